"""The second held-out templates of the names corpus: written by a writer who read
neither the detector, nor its tests, nor its docs, nor the other templates, and scored
blind at first. Their errors are never shown; their scores (totals, and counts per rule
that fired) have steered choices of the detector's rules (docs/privacy.md), so they are
held-out templates, like ``heldout``, and no longer blind."""

from __future__ import annotations

ZH_HELDOUT2 = (
    "3床患者夜间血压偏高，{t}查房后嘱加用氨氯地平5mg口服，家属{p}表示理解并签字，"
    "白班护士每两小时监测一次，明早空腹复查血常规和肾功能。",
    "门诊记录：患者{full}，女，46岁，主诉反复胃胀两月，自述常年用陈皮泡水喝。"
    "本次由{p}陪同就诊，建议下周一到消化内科复查胃镜，禁食八小时。",
    "药房交接：{p}上午取走阿莫西林胶囊两盒，处方医生为{t}。朱砂安神丸本周缺货，"
    "已登记预订，到货后电话通知患者本人或其女儿来取。",
    "理赔进度：被保险人{full}于黄金周期间在高铁站台摔伤，材料由{p}代为提交，"
    "目前缺少住院发票原件，请于周末前补交至平安路营业厅。",
    "客户来电称借记卡在王府井支行ATM被吞，核实身份后确认为{full}本人。已转{t}跟进，"
    "客户要求马上回电，并说明其配偶{p}名下的附属卡暂不挂失。",
    "退货单备注：买家{p}反馈收到的李子有一半压坏，要求全额退款，已上报{t}审批同意。"
    "快递取件改为明天上午，仓库请勿再发同批次货品。",
    "物流异常：运单SF1234567890在江边中转站滞留两天，收件人{full}多次来电催促。"
    "站点负责人{t}说明是暴雨封路所致，已安排{p}明早优先派送。",
    "家长群通知：本周五下午提前放学，请各位家长按时接孩子。{p}的家长请注意，孩子的作业本落在教室了，"
    "已交给{t}保管，何时方便来取都可以。",
    "人事备忘：{full}的转正申请已由{t}签字，试用期考核为良好。社保转移材料仍缺失，"
    "请{p}本周内提交至人力资源部，方案定稿后在一楼张贴公示。",
    "庭审笔录摘要：原告{full}诉称被告拖欠货款共计十二万元，被告代理人{t}当庭否认，"
    "并申请证人{p}出庭作证。合议庭决定休庭，下次开庭时间另行通知。",
    "工单#4471：财务部{p}反映电脑开机后无法连接打印机，型号HP LaserJet M403。"
    "已远程重装驱动，问题仍在，转交{t}上门处理，预计周三完成。",
    "物业通知：5号楼2单元1402住户{full}报修卫生间漏水，已派维修师傅{p}今天下午上门。"
    "楼下住户如有投诉请联系{t}，电话见大堂张贴的公告。",
    "个案记录：服务对象{p}，独居老人，近期情绪低落，子女均在外地。社工{full}本周家访两次，"
    "已联系林业局退休职工志愿队提供陪伴，下次评估由{t}负责。",
    "{p}你到了没？我们已经在王府井地铁站C口了，{t}说堵在高架上，大概还要二十分钟，"
    "要不我们先去旁边那家奶茶店坐会儿，到了在群里说一声",
    "会议纪要（3月12日）出席：{full}、{p}、{t}。议题一：黄金周值班安排，"
    "白班与夜班各四人；议题二：新方案试运行，由市场部汇报，下周二前提交书面材料。",
    "出警记录：22时15分接报，江边公园停车场两车剐蹭，一方司机{full}称对方逆行，"
    "另一方{p}否认。现场无人受伤，{t}已调取监控，双方约定明日到交警大队处理。",
    "实验记录 2024-05-08：细胞传代至P12，{p}负责换液，发现3号培养瓶疑似污染，"
    "已丢弃。冻存管标签由{full}核对，离心机故障已报修，下周一请{t}确认新方案。",
    "转诊单：患儿{full}，7岁，发热三天，外院诊断为支原体肺炎。家长希望由{x}接诊，"
    "已预约周四上午儿科专家门诊，联系人为患儿父亲{p}，电话已登记。",
    "信用卡中心回访：持卡人{p}对上月在周大福门店消费的分期手续费有异议，已解释费率标准。"
    "{t}承诺三个工作日内书面回复，工单编号CC20240611，请勿重复派单。",
    "您好，我是{full}的女儿，想问下我妈上周在您这配的中药里是不是有陈皮和朱砂？"
    "{p}说她吃了以后胃不舒服，麻烦{t}帮忙看一下处方，谢谢。",
    "面试反馈：候选人{p}，应聘高级Java开发，技术面由{t}主持，评价为基础扎实但系统设计经验不足。"
    "建议安排二面，请HR{full}与候选人确认何时方便。",
    "周末英语角活动调整：原定的{x}因签证问题暂停授课，改由{t}带领，"
    "报名学生请到教务处确认。{p}同学负责张贴海报，地点仍在图书馆三楼。",
    "亲，您的订单已经安排发货了哦～收件人写的是{p}，地址在马上桥路88号，如需修改请在今天18点前联系售后{t}，"
    "黄金周期间物流可能延迟，敬请谅解。",
    "交班：12床{full}术后第二天，引流量减少，夜间诉切口疼痛，已按{t}的医嘱予以镇痛。"
    "其丈夫{p}要求明日白班时与主治医师沟通出院时间，请接班护士转告。",
)
EN_HELDOUT2 = (
    "Bed 14: post-op day 2, pain controlled on oral oxycodone. {t} reviewed at 08:30 "
    "and wants bloods repeated. Daughter {p} asked to be called before any discharge "
    "decision.",
    "Clinic letter: Thank you for seeing {full}, 58, with worsening breathlessness "
    "since March. Spirometry booked at the Baker Street branch. Wife {p} reports loud "
    "snoring and daytime fatigue.",
    "Pharmacy note: {p} collected the Metformin 500mg and Lisinopril refill. "
    "Prescriber {t} was paged about the Warfarin interaction; awaiting a call back "
    "before the Friday dispense.",
    "Claim #CL-88213: policyholder {full} reports water damage at the Victoria Road "
    "property, still within the 30-day grace period. Adjuster visit assigned to {p}. "
    "The Grant application is separate.",
    "Caller verified as {full}. Disputes two charges from Best Buy on the 12th and "
    "says the bill was paid twice. Case escalated to {t}. Customer asked that {p} be "
    "added as an authorised user.",
    "Return RMA-5521: customer says the Brown rice cooker arrived with a cracked lid. "
    "{p} approved a replacement; {t} at the warehouse confirmed stock at the Reading "
    "depot.",
    "Delivery exception: parcel for {full} left at the Hudson Street depot, no safe "
    "place found. Will you re-attempt Thursday? {p} on dispatch says the van is "
    "already full.",
    "Hi all, reminder that the Spring trip to Kew Gardens is on Wednesday. {p}'s "
    "permission slip is still missing. Please return forms to {t} by Monday. Packed "
    "lunches only, no nuts.",
    "HR note: {full} has requested flexible hours from June to care for a parent. "
    "Line manager {p} supports a trial period. Payroll to confirm with {t} whether "
    "the Carer Leave policy applies.",
    "Minute of hearing: Counsel for the claimant, {t}, sought an adjournment. The "
    "respondent, {full}, did not object. Witness statement from {p} to be filed and "
    "served by 4pm on 3 October.",
    "Ticket 30917 - {p} cannot sign in to Outlook after the Windows update; MFA "
    "prompt loops. Reset token and cleared cache. Escalate to {t} in Network Services "
    "if it recurs.",
    "Maintenance log: Unit 4B on Grove Lane, boiler pressure low again. Tenant {full} "
    "was home; {p} from Parker & Sons topped up and bled the radiators. Invoice to go "
    "to {t}.",
    "Home visit: {p} was calm and engaged, flat tidy. Discussed a food bank referral "
    "and the Warm Homes grant. To be frank, rent arrears remain. Next review with "
    "{full}, Tuesday at 2.",
    "lol ok so {p} just texted, stuck on the Central line. can you grab a table at "
    "Nando's? told {t} we'd start without them if they're not here by 7",
    "Attendees: {full} (chair), {p}, {t}, Finance rep. Apologies: none. 1. Q3 budget "
    "approved subject to Legal review. 2. Office move to Kingsway postponed until "
    "January.",
    "Incident 24-0117: at approx 23:40 officers attended a disturbance outside the "
    "Red Lion pub on Mill Road. Victim {full} sustained a minor cut. Witness {p} gave "
    "a statement to {t}.",
    "Lab notebook 14/05: PCR failed again on plate 3, likely the new Taq batch. {p} "
    "reran the gel; bands faint. Ordered fresh primers from Sigma. Ask {t} about "
    "booking the confocal for Friday.",
    "Referral: please book {full} with {x} in Cardiology for an echo. ECG shows "
    "new AF. {p} from the GP surgery will fax the notes; patient prefers morning "
    "slots, not Mondays.",
    "Parents' evening notes: {x} was pleased with {p}'s progress in Maths but "
    "worried about reading. Agreed a weekly reading log. Follow-up meeting with {t} "
    "after half term.",
    "Support chat: Hi, this is {p}. My order #77120 shipped to the old address in "
    "Newport. {x} in your Hong Kong office said it could be redirected, but now "
    "{t} says it's too late?",
    "Motor claim: insured driver {full} was rear-ended at the junction of King Street "
    "and Mason Avenue. Third party admitted fault to {p} at the scene. Hire car via "
    "Enterprise; {t} to review.",
    "Pt seen with husband {p}. C/o headaches x3/52, worse in mornings, no red flags. "
    "Plan: BP diary, trial of Sumatriptan, review with {t} in 4/52. Letter copied to "
    "{full}'s GP.",
    "Interview feedback: {p} interviewed for the Senior Analyst role on Tuesday. "
    "Strong on SQL, weaker on stakeholder management. {t} recommends a second round; "
    "{full} to schedule before May.",
    "Good morning {t}, just confirming that {p} will cover the front desk while I'm "
    "at the Marshall Street clinic. Will be back by noon. Thanks, {full}",
)
