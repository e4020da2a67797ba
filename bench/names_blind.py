"""The blind templates of the names corpus: written by a writer who read neither the
detector, nor its tests, nor its docs, nor the other templates. Their errors are never
shown, their scores are not used to choose rules, and no rule of the detector is written
with them in view. Once their scores steer a choice they are held-out templates, and a
new blind set is written."""

from __future__ import annotations

ZH_BLIND = (
    "{p}今晨6点诉头晕、乏力，测BP 150/95mmHg，已通知{t}查看；"
    "遵医嘱予硝苯地平缓释片10mg口服，家属{full}陪护，嘱卧床休息，下床需有人搀扶。",
    "出院小结：患者{full}，男，67岁，因“反复胸闷3年，加重2天”入我院心内科。"
    "住院期间由{t}主管，冠脉造影示前降支狭窄约70%。出院后继续服用阿司匹林、"
    "阿托伐他汀，两周后门诊复查，如有不适请联系{p}。",
    "来电客户{full}反映招商银行App转账显示成功但对方未到账，金额2万元，流水号已记录。"
    "已转二线{p}跟进，预计48小时内回电；客户要求周末也可联系，备注：白天上班不方便接听。",
    "工单#88213：用户称宽带每晚8点后频繁掉线，光猫型号HG8245。{p}上门检测后更换了网线，"
    "仍不稳定。已升级至{t}处理，用户要求马上解决，否则投诉到工信部。",
    "@{p} 明天王府井那家店几点集合？我和{full}坐高铁过去，大概十点到，"
    "你们要是先到就先排队哈，别等我们了😂 对了记得带充电宝，周末人多，估计要排一个小时",
    "售后记录：买家{full}收到的新会陈皮礼盒外包装破损，要求退款。客服{p}已申请仅退款58元，"
    "由{t}审核通过；下次发货请改用顺丰，并加气泡膜。",
    "各位家长好，本周五下午学校组织到江边湿地公园秋游，请提前准备好水和雨衣。"
    "{p}妈妈已帮忙联系好大巴，有问题可以私信我或者{t}。——三年二班 {full}",
    "3栋502报修：卫生间漏水渗到楼下。已约维修工{p}周末上午上门，租客{full}说白天家里没人，"
    "钥匙放物业前台，届时由{t}陪同开门。",
    "理赔备注：被保险人{full}于10月3日黄金周期间在沪昆高速追尾，车损约1.2万元。"
    "{p}的行车记录仪视频已补传，定损由{t}负责，责任比例待交警认定书出来后再确定。",
    "书记员记录：原告{full}到庭，被告{p}经传票传唤未到庭。审判长宣布缺席审理；"
    "原告代理人{t}当庭提交借条原件及微信转账截图共十二页，被告何时补交答辩状另行通知。",
    "22:40接报警，报警人{full}称在林业局宿舍楼下的雅迪电动车被盗。{p}出警，"
    "调取监控发现嫌疑人往江边方向逃离，案件已移交{t}继续侦查。",
    "家访记录：今天和{p}一起去看了独居的老人，她孙子上初二，最近不愿上学。"
    "老人说低保金额还没到账，已答应帮她问民政所的{t}。下次家访约在周三，{full}负责带米和油。",
    "2024-03-12 细胞传代至第15代，培养基换成DMEM+10%FBS。{p}说上次那批离心管有问题，"
    "已经全部换掉。Western blot结果交给{t}看过，建议下周重复一次。",
    "面试反馈：候选人{full}，应聘高级Java开发，三面由{p}和{t}负责。技术基础扎实，"
    "对Spring Cloud熟悉，但沟通稍显拘谨；薪资方面建议再谈，何时入职需等背调结果。",
    "婚礼清单：5月20日，金茂酒店宴会厅；新郎{full}，新娘{p}；伴娘名单周末前确认；"
    "喜糖用德芙，请柬字体用宋体；主持人用{t}推荐的那位。",
    "订单备注：{full}等4人，黄金周云南6日游，成都双流转机。{p}要求靠窗座位，已和航司确认；"
    "酒店在大理古城附近，接机由{t}安排，请提前一天发短信提醒。",
    "预约提醒：{p}您好，您在超级猩猩（高新店）预约的周六上午10:00私教课已确认，"
    "本次由{t}带课。如需取消请提前24小时在小程序操作，否则将扣除1次课时。",
    "{p}，稿子里高铁票价那段数据要再核一下，12306上查到的是553元。标题用宋体加粗，"
    "{full}那边的采访录音我下午发你，六点前要定版。",
    "门诊预约 | 患者：{full} | 科室：口腔科 | 医生：{t} | 时间：周三14:30 | "
    "备注：复诊拔智齿，联系人{p}（女儿），电话已核实。",
    "跨国项目周会：{x}介绍了新药三期临床的入组进度，{full}补充了上海中心的数据。"
    "{p}提出样本量可能不够，会后再跟统计部确认。",
    "人事备忘：{full}申请从下月起调岗至华南区，直属上级{t}已签字同意。"
    "交接工作由{p}负责，社保和公积金转移手续请方便时到人事部办理。",
    "业主群通知：地下车库B2区周末进行防水施工，请各位车主马上挪车。{p}、{full}两位业主的车"
    "仍未移走，请看到后联系物业{t}，谢谢配合！",
    "妈，我周末不回去了，公司要加班。你让{p}记得给爷爷买陈皮和降压药，药名写在冰箱上了。"
    "{t}说爷爷的血压最近还行，别太担心。",
    "【在线客服】您好，我是客服{p}，很高兴为您服务。关于您反映的京东快递未送达问题，"
    "已联系配送站，预计明天白天送到；如仍有问题可要求{t}给您回电。",
)
EN_BLIND = (
    "0600 obs: {p} c/o dizziness, BP 150/95. Paged {t}, who ordered Amlodipine 5mg PO. "
    "Daughter ({full}) at bedside; fall risk sign posted, bed alarm on.",
    "Dear {t}, thank you for referring {full}, a 67-year-old gentleman seen in the "
    "Cardiology clinic on Monday. Angiogram showed 70% LAD stenosis. Please continue "
    "Aspirin and Atorvastatin; {p} will be reviewed in May.",
    "Caller {full} reports a Zelle transfer of $2,000 showing Complete but not received. "
    "Escalated to {p} in Fraud Ops, callback within 48h. Customer asked: Will someone "
    "call after 5pm? Noted.",
    "Ticket #88213 - fiber drops nightly after 8pm, router model HG8245. {p} swapped the "
    "patch cable Tuesday, issue persists. Escalating to {t}; customer threatening to port "
    "out to Verizon.",
    "lol {p} are u coming to the Rose Garden thing on Sat?? me and {full} are taking the "
    "Red Line, should be there by 10. Mark the date for the potluck too 🎉",
    "RMA 4471: buyer {full} says the Instant Pot lid arrived cracked. {p} offered a partial "
    "refund of $25, declined. Full refund approved per {t}; next time double box and ship "
    "UPS Ground.",
    "Hi parents! Our field trip to the Baker Street museum is this Friday. Please pack a "
    "lunch and a raincoat. {p}'s mom kindly offered to chaperone. Questions? Message me or "
    "{t}. Thanks, {full}",
    "Unit 3B - bathroom leak into 2B ceiling. Plumber {p} booked for Sat AM. Tenant {full} "
    "won't be home during the day; keys left at the front desk, {t} to let them in.",
    "Claim 22-0917: insured {full} rear-ended on I-95 over Labor Day weekend, est. damage "
    "$12k. Dashcam footage from {p}'s phone uploaded. Liability split pending police "
    "report, per adjuster {t}.",
    "Minutes, Case No. 2023-CV-1184. Plaintiff {full} present; Defendant {p} absent despite "
    "service. Counsel for plaintiff, {t}, submitted Exhibits A through F. The Court will "
    "rule in writing by June 14.",
    "2240 hrs: RP {full} reports a stolen e-bike outside the Grant Avenue library. {p} "
    "responded; CCTV shows suspect heading toward the river path. Case handed to {t} in "
    "Property Crimes.",
    "Home visit w/ {p}. {x}'s grandson (8th grade) refusing school again; SNAP "
    "benefits still not loaded on her EBT card. Will call {full} at the county office "
    "Wednesday.",
    "3/12 - passaged HeLa to P15, switched to DMEM + 10% FBS. {p} thinks the Falcon tube "
    "lot was bad, replaced. Western blot shown to {t}; repeat next week with fresh Tris "
    "buffer.",
    "Feedback for {full} (Senior Backend, Round 3). Interviewers: {p}, {x}. Strong on "
    "Kafka and Postgres, weaker on system design. Recommend hire; May start date works if "
    "the background check clears.",
    "Checklist - June 8, Magnolia Hall: confirm florist (peonies, no lilies); {full} to "
    "send final guest count; {x} handles the tea ceremony; {p} picks up the rings from "
    "Tiffany on Thursday.",
    "Booking ref QX7LM: {full} + 3, Cancun 6 nights, connecting in Houston. {p} requested "
    "a window seat, confirmed with United. Airport pickup arranged by {t}; send reminder "
    "text 24h before.",
    "Reminder: Hi {p}, your PT session at Equinox (Park Ave) is confirmed for Saturday "
    "10:00 AM with {t}. Cancel at least 24 hours ahead in the app to avoid losing a credit.",
    "{p} can you recheck the Amtrak fare in graf 4? Site says $89, not $98. Also {full}'s "
    "interview audio is in the shared Drive, need it filed before the copy desk closes at 6.",
    "APPT | Pt: {full} | Dept: Dermatology | Provider: {t} | Wed 2:30 PM | Note: f/u on "
    "mole biopsy; contact {p} (son) if no answer, number verified.",
    "HR memo: {full} requests transfer to the Austin office effective next month. Approved "
    "by line manager {t}. Handover to {p}; benefits paperwork due at People Ops by Friday.",
    "Building notice: garage Level B2 waterproofing this weekend. Will owners please move "
    "cars ASAP. Vehicles of {p} and {full} are still parked there; contact {t} at the "
    "management office.",
    "Hey mom, not coming home this weekend, work crunch. Can you ask {p} to grab Grandpa's "
    "Lisinopril refill at Walgreens? {t} said his numbers look fine, don't worry.",
    "Chat transcript 10:14 - Agent {p}: Hi, thanks for contacting Comcast support. I see "
    "your FedEx package was delayed. I've asked {t} to call you back tomorrow morning.",
    "Good morning {t}, following up on the Jordan Hall rental for the April gala. Could you "
    "confirm the AV setup? {p} from our team will visit Monday. Best regards, {full}",
)
