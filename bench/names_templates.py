"""The templates of the names corpus (``bench/names.py``): ``dev`` ones, visible while the
detector's context words and thresholds were chosen, ``heldout`` ones, whose errors
are never shown, and ``reviewed`` ones. Those were written blind (by a writer who had
read neither the detector, nor its tests, nor its docs) and scored blind for a while;
then their errors were read and rules were written with them in view, so they are a
second dev set now. The blind templates in use are in ``names_blind.py``.

Slots: {p} a person in some form (full, given, titled, word-like, split ...), {full} a
full name, {t} a titled surname (王医生 / Dr. Smith), {x} a Chinese surname after an
English title (Dr. 李). Everything else is literal text, hard negatives included.
"""

from __future__ import annotations

ZH_DEV = (
    "患者{full}，男，58岁，高血压病史十年，今日由{t}接诊，建议调整用药方案。",
    "家属{p}代诉患者夜间咳嗽加重，已告知{t}，明早复查血常规。",
    "主治医生{full}查房：白细胞计数偏高，黄疸未退，继续观察。",
    "客户{p}来电反映订单金额有误，已转交{full}处理，预计周末前回复。",
    "工单已分配给{p}，问题描述：华为手机无法登录，安排明天上门。",
    "{p}：我明天下午到，麻烦跟{t}说一声，谢谢！",
    "今天和{p}一起去王府井吃饭，{full}也来了。",
    "护士{full}记录：体温37.8度，石膏固定良好，马上安排换药。",
    "请{t}审批这份文件，联系人{p}，平安保险报销方案附后。",
    "经办人：{full}；复核：{p}；备注：江苏分公司常规检查。",
    "术后第二天，{p}的女儿{full}前来探视，情绪稳定。",
    "据{t}介绍，患者既往有糖尿病，黄金周期间未按时服药。",
    "感谢{p}耐心解答，我的问题已经解决，五星好评！",
    "周一例会：{full}汇报了方案进度，{p}负责测试，林区项目暂停。",
    "转诊记录：原接诊医师{full}，现由{t}负责，病情平稳。",
    "@{p} 文件发你邮箱了，{full}说下周再改。",
    "投诉人{full}称快递员态度差，已联系{p}核实，高度重视。",
    "会诊意见（{t}）：建议完善检查，白天多饮水，由{p}随访。",
    "病程记录：{full}今日精神好，{t}查房后同意出院。",
    "{p}你好，你的快递放在门卫室了，{full}代收。",
    "会议纪要：{full}主持，{p}记录，{t}列席。",
    "接{t}通知，{full}明天调休，{p}顶班。",
    "学生{full}的家长{p}来电请假。",
    "刚才{p}在电梯里碰到{full}，聊了几句。",
    "请假条：{full}因病请假两天，由{p}代课。",
    "{full}和{p}是这次项目的负责人，有问题找{t}。",
    "电话回访{full}，本人表示满意，{p}已登记。",
    "维修记录：{p}报修空调漏水，{full}下午处理完毕。",
    "系统提示：{p}的账号已锁定，请联系信息科处理。",
    "{full}在微信上说，顺丰快递还没到，让{t}帮忙查一下。",
    "新版本上线后，{p}反映页面很卡，技术部正在排查。",
    "药房通知：{full}的阿司匹林已停用，{t}同意。",
    "本月优秀员工：{full}，推荐人{p}。",
    "{full}来电咨询医保报销，{p}已解答。",
    "出差申请：{full}赴上海参加培训，{t}审批。",
    "投诉：{p}购买的美的空调漏水，售后部门跟进。",
    # The third batch, written after the held-out ones above it.
    "出院小结：{full}，女，72岁，因肺部感染住院十天，{t}同意今日出院，女婿{p}陪同。",
    "宝贝{p}今天在幼儿园表现很好，{full}老师说午饭吃得很干净。",
    "快递单号已发，{p}麻烦查收，有问题联系客服{full}。",
    "{full}医生的门诊改到周四上午，原预约的{p}请改约。",
    "会议室被{p}订了，你和{full}换到三楼吧。",
    "今天值班的是{full}，明天轮到{p}，后天{t}。",
    "备注：此单由{p}跟进，{full}已休假，勿再分配。",
    "奶奶{full}今年八十岁了，身体很硬朗，孙子{p}常来看她。",
    "{full}老师好，我是{p}的妈妈，孩子今天发烧请假一天。",
    "手术记录：主刀{t}，助手{full}，麻醉医师{p}，手术顺利。",
    "谢谢{full}！上次借的书让{p}带给你了。",
    "收到{p}的邮件，说合同要改，我已经转给{full}了。",
    "律师函：委托人{full}与被申请人{p}之间的借款纠纷，请于七日内答复。",
    "体检报告显示{full}血脂偏高，{t}建议低脂饮食，三个月后复查。",
    "小区通知：{p}家的车挡住了消防通道，请{full}尽快挪车。",
    "面试安排：候选人{full}，面试官{p}和{t}，下午两点。",
)
ZH_HELDOUT = (
    "凌晨两点{full}因胸闷入院，值班的{t}给予吸氧，心电图未见异常。",
    "{p}反馈发票抬头写错了，请财务部重新开具，金额不变。",
    "哈哈{p}你太逗了，周六和{full}去爬山吗？",
    "随访电话：{full}接听，自述食欲好转，体重增加两公斤，{t}嘱继续服药。",
    "售后单：{p}的冰箱不制冷，维修师傅{full}已上门，更换压缩机。",
    "{full}请假三天，工作由{p}代理，紧急事项请找{t}。",
    "产妇{full}顺产一女婴，体重3.2公斤，陪护人{p}。",
    "群公告：{p}负责收集报名表，{full}统计人数，截止到周五。",
    # Written with the corpus's second batch of dev templates, before any of them was
    # tuned on.
    "门诊病历：{full}，女，34岁，主诉头痛三天，{t}建议做头颅CT。",
    "快递到了吗？{p}刚才打电话问，我让她找{t}。",
    "本周值班安排：周一{full}，周二{p}，周三{t}。",
    "{full}同学的作业已批改，请转告{p}明天交补充材料。",
    "入职手续由{p}办理，{full}负责带新人熟悉环境。",
    "老人{full}独居，社区网格员{p}每周上门两次。",
    "微信群里{p}说今晚加班，{full}帮忙点了外卖。",
    "退款申请已通过，审批人{full}，如有疑问请联系{t}。",
    # Written with the corpus's third batch of dev templates, before any of them was
    # tuned on.
    "夜班交接：3床{full}血糖偏低，已通知{t}，{p}守在床边。",
    "您好，我是{full}，上次{p}帮我改的地址又错了，麻烦再核对。",
    "{p}昨天把U盘忘在会议室，保安{full}捡到后交给了{t}。",
    "家访记录：孩子由奶奶{full}照顾，母亲{p}在外地打工。",
    "报销单据由{full}签字，出纳{p}付款，{t}最终审核。",
    "{full}反映楼上漏水，物业已派{p}查看，暂未修好。",
    "今晚聚餐{p}请客，{full}说不来了，{t}晚点到。",
    "病理科回报：{full}标本为良性，{t}已电话告知家属{p}。",
)
EN_DEV = (
    "Patient {full} was seen by {t} on Monday; blood pressure stable, continue Aspirin.",
    "Spoke with the patient's wife, {p}, who asked that {t} call her back.",
    "Ticket escalated to {full} in Customer Service: Chrome crashes on login.",
    "Hi {p}, thanks for reaching out. {full} will ship the iPhone case by Friday.",
    "{p} said the Windows update broke Excel again, please ask {t} to check.",
    "Admitted via the Emergency Department; {t} on call. Contact: {p}.",
    "Meeting with {full} and {p} moved to March 3 in the London office.",
    "Nurse note: {full} reports pain 4/10 after physiotherapy; seen by {x}.",
    "Per {t}, the Visa refund was approved. Regards, {full}",
    "Can you cc {p} on the Zoom invite? {full} is out until Christmas.",
    "Discharge summary: {full} tolerated the procedure well; follow up with {t} in Boston.",
    "The daughter ({p}) brought the medication list; {x} reviewed it.",
    "Thanks {p}! Your Amazon order is on its way. Best, {full}",
    "Escalation: {full} from Billing could not reach {p}; Outlook keeps bouncing.",
    "{full} here, I've been waiting since Tuesday for {t} to reply.",
    "Referral from {t} at Mercy General for {full}, History of asthma.",
    "lol {p} just told me {full} got the Tesla",
    "Handover: bed 12, {full}, family contact {p}, Spanish speaker.",
    "Progress note: {full} alert and oriented, {t} agreed to discharge.",
    "Hey {p}, your parcel is at the front desk, {full} signed for it.",
    "Minutes: {full} chaired, {p} took notes, {t} attended.",
    "Per {t}, {full} is off tomorrow and {p} covers the shift.",
    "Student {full}'s parent {p} called to report an absence.",
    "Ran into {full} in the elevator with {p} this morning.",
    "Leave request: {full} is sick for two days, {p} will teach the class.",
    "{full} and {p} lead this project; questions go to {t}.",
    "Callback to {full}: satisfied with the repair, logged by {p}.",
    "Maintenance: {p} reported a leaking AC unit, {full} fixed it in the afternoon.",
    "Update: the Outlook plugin keeps crashing for {p}; IT Support is aware.",
    "Shift report: {full} covered Ward 5, Pharmacy reviewed the Warfarin dose.",
    "Reminder for {p}: the Quarterly Review is on Thursday in Room B.",
    "Customer {full} wants the Premium Plan; Sales will call back, says {t}.",
    "Lab results for {full} are back; Haemoglobin low, {t} informed.",
    "Sent the Dropbox link to {p} and the Legal team, FYI {full}.",
    "Flight to Chicago booked for {full}; Uber receipts go to Finance.",
    "Complaint: {p} says the Samsung TV arrived broken, Warehouse to investigate.",
    # The third batch, written after the held-out ones above it.
    "Discharge letter: {full}, 72F, ten days for pneumonia; {t} cleared her, son-in-law {p} "
    "escorted.",
    "Sweetheart {p} did great at nursery today, Miss {full} says lunch was finished.",
    "Tracking number sent, {p} please check; contact support agent {full} with any issue.",
    "{t}'s clinic moves to Thursday morning, so {p} needs to rebook.",
    "{p} booked the meeting room, so you and {full} should use the third floor.",
    "On call today is {full}, tomorrow {p}, the day after {t}.",
    "Note: {p} owns this case, {full} is on holiday, do not reassign.",
    "Grandma {full} turned eighty this year, and her grandson {p} visits often.",
    "Dear {t}, I am the mother of {p}; she has a fever and will stay home today.",
    "Operation note: surgeon {t}, assistant {full}, anaesthetist {p}; uneventful.",
    "Thanks {full}! I gave the book back through {p}.",
    "Got an email from {p} saying the contract needs changes; forwarded it to {full}.",
    "Letter before action: our client {full} and the respondent {p}, loan dispute, reply "
    "within seven days.",
    "Health check shows {full} has raised cholesterol; {t} advised a low-fat diet.",
    "Notice: the car of {p} is blocking the fire lane, {full} please move it now.",
    "Interview: candidate {full}, panel {p} and {t}, 2pm in Room 4.",
)
EN_HELDOUT = (
    "At 2am {full} presented with chest pain; {t} ordered an ECG, results normal.",
    "{p} reports the invoice header is wrong, please reissue from Accounts Payable.",
    "haha {p} you're hilarious, hiking with {full} on Saturday?",
    "Follow-up call: {full} answered, appetite improved, {t} advised to continue Metformin.",
    "RMA opened: {p}'s fridge stopped cooling, technician {full} replaced the compressor.",
    "{full} is on leave until Wednesday, {p} covers; urgent items go to {t}.",
    "Delivered a healthy girl to {full}, 3.2 kg, partner {p} present, {x} attending.",
    "Group notice: {p} collects the sign-up sheets, {full} counts heads by Friday.",
    # Written with the corpus's second batch of dev templates, before any of them was
    # tuned on.
    "Clinic note: {full}, 34F, headache for three days; {t} requested a CT scan.",
    "Did the parcel arrive? {p} phoned earlier, I told her to ask {t}.",
    "Rota this week: Monday {full}, Tuesday {p}, Wednesday {t}.",
    "{full} has been marked present; please remind {p} to bring the forms tomorrow.",
    "Onboarding is handled by {p}, and {full} will show the new hire around.",
    "Elderly resident {full} lives alone; the community worker {p} visits twice a week.",
    "In the group chat {p} said she is working late, so {full} ordered takeout.",
    "Refund approved by {full}; for questions contact {t} at the Help Desk.",
    # Written with the corpus's third batch of dev templates, before any of them was
    # tuned on.
    "Night handover: bed 3, {full}, glucose low, {t} notified, {p} staying with him.",
    "Hello, this is {full}; the address {p} fixed last time is wrong again.",
    "{p} left a USB stick in the boardroom; security guard {full} handed it to {t}.",
    "Home visit: the child is cared for by grandmother {full}, mother {p} works away.",
    "Expense claim signed by {full}, paid by {p} in Treasury, final check by {t}.",
    "{full} reported a leak from the flat above; the caretaker {p} has not fixed it yet.",
    "Dinner tonight is on {p}, {full} can't make it, {t} will be late.",
    "Pathology: the sample from {full} is benign; {t} phoned the son, {p}, today.",
)
# Written blind to the detector, then reviewed (see above).
ZH_REVIEWED = (
    "护理交班：12床{full}今晨六点测血压150/95，已口服硝苯地平，{p}在旁陪护，交接给白班继续观察。",
    "【售后回访】{p}购买的格力空调外机异响，安装师傅已于周三上门复检，结果请同步给{t}备案。",
    "各位同事，下周二起{full}调往武汉分部，原负责的客户暂由{p}接手，交接清单请发到共享盘。",
    "出院医嘱：{full}继续服用阿托伐他汀钙片，每晚一片，两周后到心内科找{t}复诊，家属{p}已签字确认。",
    "投诉编号0318：顾客称在万达店买的羽绒服掉色，店长转交{p}处理，{full}负责联系物流上门取件。",
    "昨晚十一点多{p}在群里说孩子发烧，我让她先去儿童医院急诊，今早{t}也打电话问过情况。",
    "劳动仲裁记录：申请人{full}主张公司拖欠加班费三个月，被申请方代理人{p}当庭提交了考勤表。",
    "家长群通知：明天春游请带好雨衣和水壶，七点半在校门口集合，{p}和{full}的家长负责核对名单。",
    "值班表调整：五月一日夜班由{p}替换，原排班的{full}改到五月三日白班，请{t}知悉。",
    "门诊记录：患儿由外婆带来，主诉腹泻两天，{t}开了蒙脱石散和口服补液盐，嘱{p}注意多补水。",
    "刚给{p}打了三次电话都没人接，快递柜里的包裹明天就超时了，你见到{full}帮忙提醒一下。",
    "项目周会纪要：长城汽车的需求变更由{full}评估，{p}本周完成接口联调，风险点汇总给{t}。",
    "心理咨询预约：来访者{p}，首次咨询，时间周四下午三点，地点咨询室B2，由{full}接待并做初评。",
    "感谢{t}和护士站的大家这半个月的照顾，我爸恢复得很好，{p}特意做了面锦旗送过来。",
    "人事备忘：{full}试用期考核合格，自六月起转正，薪资调整方案由{p}起草后报{t}审批。",
    "谁把{p}的充电宝拿走了？黑色小米的那个，放在前台桌上，{full}说中午还看到过。",
)
EN_REVIEWED = (
    "Nursing handover 07:00: {full} in bay 4 spiked a temp of 38.6 overnight, cultures sent, "
    "{p} at the bedside, {t} aware.",
    "Ticket #58213: {p} can't sync her Fitbit with the Android app since the last update; "
    "assigned to {full}, Tier 2.",
    "Quick heads-up team, {full} is relocating to the Denver office next month, so {p} picks "
    "up those accounts from the 15th.",
    "Discharge plan: continue Lisinopril 10 mg daily, review with {t} at the Heart Clinic in "
    "two weeks; {p} will drive {full} home.",
    "Order 77-1042 arrived with a cracked screen. Spoke to {p}, who wants a replacement; "
    "courier pickup booked by {full} for Thursday.",
    "Just after 11 last night {p} messaged that her son had a fever, so I said go to Urgent "
    "Care; {t} checked in this morning.",
    "Tribunal note: claimant {full} alleges three months of unpaid overtime; the employer's "
    "representative, {p}, produced timesheets.",
    "Parents: the field trip is tomorrow, bring rain jackets and water bottles. {p} and "
    "{full} are checking names at the gate by 7:30.",
    "Rota change: {p} now takes the May 1 night shift and {full} moves to May 3 days. Please "
    "confirm with {t} before Friday.",
    "Paeds clinic: brought in by grandmother with two days of diarrhoea; {t} prescribed oral "
    "rehydration salts and told {p} to push fluids.",
    "Called {p} three times, no answer, and the locker parcel expires tomorrow. If you see "
    "{full}, could you give them a nudge?",
    "Sprint review: {full} will scope the Ford change request, {p} finishes the API "
    "integration this week, open risks go to {t}.",
    "Counselling intake booked for {p}, first session Thursday 3pm in Room B2, initial "
    "assessment with {full}.",
    "Huge thanks to {t} and everyone at the nurses' station, Dad is doing so well; {p} is "
    "dropping off a card and some brownies.",
    "HR memo: {full} passed probation and is confirmed from June; {p} drafts the salary "
    "review for sign-off by {t}.",
    "Who took {p}'s power bank? The black Anker one, left on reception, and {full} says it "
    "was still there at lunch.",
)
