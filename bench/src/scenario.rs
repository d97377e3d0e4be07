//! The scenarios of the issue: what the loadgen does at each step, and when to stop stepping.

use clap::ValueEnum;
use serde::Serialize;

/// A benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1 room, 5 audio-only publishers → N subscribers.
    Audio,
    /// 1 video publisher → N subscribers, N stepped up until loss > 1 % or the core saturates.
    Fanout,
    /// R rooms of 5 peers, everyone publishing audio and video.
    Meetings,
    /// 200 peers join within 2 s (20 rooms of 1 publisher + 9 subscribers).
    JoinStorm,
    /// 100 joined peers with transports and no media (10 rooms of 10).
    Idle,
    /// One room of 4 publishers and 100 subscribers on one router, then spread over two
    /// workers' routers (same core): what piping costs.
    Spanning,
    /// A meeting of 50, everyone publishing audio and video: every video, then each peer
    /// asking for 9 (last-N; ours only, Janus has none).
    LastN,
    /// A webinar: 1 publisher, N viewers (watch only) joining at 50 a second; join → first
    /// frame percentiles.
    Webinar,
    /// 20 rooms of 1 publisher and 10 viewers over `/ws`, then the same with WHIP publishers
    /// and WHEP viewers (ours only: Janus needs a separate service).
    Whip,
    /// 20 rooms of 1 publisher and 10 subscribers: a port per transport, then one port per
    /// worker (`RTC_PORT`), each over UDP and over ICE-TCP (Janus: UDP, a port per transport).
    IcePaths,
    /// R rooms of 1 publisher and 1 subscriber, then the same with every room recorded:
    /// what a recorded track costs, and how many one core records without loss.
    Recording,
}

/// One step of a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// What varies, for the table (`N=50`).
    pub label: String,
    /// The x of the chart (subscribers, rooms, peers).
    pub x: u32,
    /// The loadgen's arguments (URL and output flags are added).
    pub args: Vec<String>,
    /// Our SFU's workers and admission flags for this step, instead of the default (one
    /// worker, no consumer cap); Janus ignores them.
    pub sfu_args: Vec<String>,
    /// A step of a feature Janus lacks: run against our SFU only.
    pub ours_only: bool,
    /// Every room is recorded (see `recording`).
    pub record: bool,
}

/// The loadgen's arguments for 20 rooms of 1 publisher and 10 subscribers, joining at 50 a
/// second (the `whip` and `ice-paths` scenarios).
fn twenty_rooms_of_one_to_ten(duration: &str) -> [&str; 10] {
    [
        "--rooms",
        "20",
        "--publishers",
        "1",
        "--subscribers",
        "10",
        "--ramp",
        "50",
        "--duration",
        duration,
    ]
}

fn step(label: String, x: u32, args: &[&str]) -> Step {
    Step {
        label,
        x,
        args: args.iter().map(|a| a.to_string()).collect(),
        sfu_args: Vec::new(),
        ours_only: false,
        record: false,
    }
}

impl Scenario {
    /// Every scenario, in the order.
    pub const ALL: [Scenario; 11] = [
        Scenario::Audio,
        Scenario::Fanout,
        Scenario::Meetings,
        Scenario::JoinStorm,
        Scenario::Idle,
        Scenario::Spanning,
        Scenario::LastN,
        Scenario::Webinar,
        Scenario::Whip,
        Scenario::IcePaths,
        Scenario::Recording,
    ];

    /// Its title in the results.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Audio => "Audio only: 1 room, 5 publishers → N subscribers",
            Scenario::Fanout => {
                "Video fan-out: 1 publisher (600 kbit/s VP8 + Opus) → N subscribers"
            }
            Scenario::Meetings => "Meetings: R rooms of 5, everyone publishes audio and video",
            Scenario::JoinStorm => {
                "Join storm: 200 peers join within 2 s (20 rooms × 1 publisher + 9 subscribers)"
            }
            Scenario::Idle => {
                "Idle cost: 100 and 1,000 joined peers without media (rooms of 10): joined only (an idle Janus participant has no PeerConnection), then with connected send and receive transports (ours only); memory per peer is what everyone joined adds to the SFU's resident memory"
            }
            Scenario::Spanning => {
                "One room of 4 publishers (audio + video) and 100 subscribers: one router, then two workers' routers piped together (both workers on the SFU's one core)"
            }
            Scenario::LastN => {
                "Meeting of 50, everyone publishing (Opus + 150 kbit/s VP8): every video, then last-N 9 (ours only)"
            }
            Scenario::Webinar => {
                "Webinar: 1 publisher (600 kbit/s VP8 + Opus) → N viewers (watch only) joining at 50 a second"
            }
            Scenario::Whip => {
                "WHIP in, WHEP out: 20 rooms × (1 publisher + 10 viewers) over /ws, then 20 WHIP publishers and 200 WHEP viewers (ours only)"
            }
            Scenario::Recording => {
                "Recording: R rooms × (1 publisher of Opus + 600 kbit/s VP8, 1 subscriber), then every room recorded (2 tracks a room; ours: the recorder process, WebM files; Janus: its VideoRoom's `.mjr` RTP dumps, which need janus-pp-rec afterwards)"
            }
            Scenario::IcePaths => {
                "Ports and ICE-TCP: 20 rooms × (1 publisher + 10 subscribers), a port per transport then one port per worker (RTC_PORT), over UDP then over ICE-TCP (ours only past the first)"
            }
        }
    }

    /// Whether the steps go on only while the previous one held (fan-out finds the limit).
    pub fn steps_until_limit(self) -> bool {
        self == Scenario::Fanout
    }

    /// Its steps; `quick` keeps the first ones, for a smoke run of the bench itself.
    pub fn steps(self, quick: bool) -> Vec<Step> {
        let duration = if quick { "4" } else { "10" };
        match self {
            Scenario::Audio => {
                let ns: &[u32] = if quick { &[20] } else { &[20, 50, 100, 200] };
                ns.iter()
                    .map(|&n| {
                        let subs = n.to_string();
                        step(
                            format!("N={n}"),
                            n,
                            &[
                                "--publishers",
                                "5",
                                "--subscribers",
                                &subs,
                                "--audio-only",
                                "--ramp",
                                "50",
                                "--duration",
                                duration,
                            ],
                        )
                    })
                    .collect()
            }
            Scenario::Fanout => {
                let ns: &[u32] = if quick {
                    &[10, 50]
                } else {
                    &[10, 25, 50, 100, 200, 300, 400, 500, 600, 800, 1000]
                };
                ns.iter()
                    .map(|&n| {
                        let subs = n.to_string();
                        step(
                            format!("N={n}"),
                            n,
                            &[
                                "--publishers",
                                "1",
                                "--subscribers",
                                &subs,
                                "--ramp",
                                "100",
                                "--duration",
                                duration,
                            ],
                        )
                    })
                    .collect()
            }
            Scenario::Meetings => {
                let rs: &[u32] = if quick { &[2] } else { &[2, 5, 10, 20] };
                rs.iter()
                    .map(|&r| {
                        let rooms = r.to_string();
                        step(
                            format!("R={r}"),
                            r,
                            &[
                                "--rooms",
                                &rooms,
                                "--publishers",
                                "5",
                                "--ramp",
                                "50",
                                "--duration",
                                duration,
                            ],
                        )
                    })
                    .collect()
            }
            Scenario::JoinStorm => vec![step(
                "200 in 2 s".into(),
                200,
                &[
                    "--rooms",
                    "20",
                    "--publishers",
                    "1",
                    "--subscribers",
                    "9",
                    "--ramp",
                    "100",
                    "--duration",
                    duration,
                ],
            )],
            Scenario::Spanning => {
                let load = [
                    "--publishers",
                    "4",
                    "--subscribers",
                    "100",
                    "--ramp",
                    "50",
                    "--duration",
                    duration,
                ];
                // 100 subscribers × 8 streams + the publishers' 4 × 6: about 820 consumers,
                // over a cap of 700 in the second step (admission also reserves 2 per router
                // mate for each newcomer's tracks: a router fills at about 65 peers).
                [("1 router", 1, "1000000"), ("2 routers", 2, "700")]
                    .into_iter()
                    .map(|(label, x, cap)| Step {
                        sfu_args: ["--workers-per-node", "2", "--max-consumers-per-worker", cap]
                            .map(String::from)
                            .to_vec(),
                        ..step(label.into(), x, &load)
                    })
                    .collect()
            }
            Scenario::LastN => {
                let load = [
                    "--publishers",
                    "50",
                    "--video-kbps",
                    "150",
                    "--ramp",
                    "25",
                    "--duration",
                    duration,
                ];
                let every = step("every video".into(), 49, &load);
                let mut last_n = load.to_vec();
                last_n.extend(["--last-n", "9"]);
                let nine = Step {
                    ours_only: true,
                    ..step("last-N 9".into(), 9, &last_n)
                };
                vec![every, nine]
            }
            Scenario::Webinar => {
                let ns: &[u32] = if quick { &[100] } else { &[300, 600, 1000] };
                ns.iter()
                    .map(|&n| {
                        let viewers = n.to_string();
                        let load = [
                            "--publishers",
                            "1",
                            "--subscribers",
                            &viewers,
                            "--ramp",
                            "50",
                            "--duration",
                            duration,
                        ];
                        step(format!("1 → {n}"), n, &load)
                    })
                    .collect()
            }
            Scenario::Whip => {
                let load = twenty_rooms_of_one_to_ten(duration);
                let mut http = load.to_vec();
                http.extend(["--whip", "--whep"]);
                let whip = Step {
                    ours_only: true,
                    ..step("WHIP → WHEP".into(), 2, &http)
                };
                vec![step("/ws".into(), 1, &load), whip]
            }
            Scenario::IcePaths => {
                let udp = twenty_rooms_of_one_to_ten(duration);
                let mut tcp = udp.to_vec();
                tcp.push("--ice-tcp");
                // The default one worker without a cap, and its port below the ephemeral
                // range (nothing else takes it).
                let one_port = [
                    "--workers-per-node",
                    "1",
                    "--max-consumers-per-worker",
                    "1000000",
                    "--rtc-port",
                    "31700",
                ]
                .map(String::from)
                .to_vec();
                let ours = |label: &str, x: u32, args: &[&str], sfu_args: Vec<String>| Step {
                    ours_only: true,
                    sfu_args,
                    ..step(label.into(), x, args)
                };
                vec![
                    step("port range, UDP".into(), 1, &udp),
                    ours("RTC_PORT, UDP", 2, &udp, one_port.clone()),
                    ours("port range, ICE-TCP", 3, &tcp, Vec::new()),
                    ours("RTC_PORT, ICE-TCP", 4, &tcp, one_port),
                ]
            }
            Scenario::Recording => {
                let rs: &[u32] = if quick { &[10] } else { &[10, 25, 50, 100] };
                // The default SFU arguments, which the recording arguments are added to.
                let sfu_args = ["--workers-per-node", "1", "--max-consumers-per-worker"]
                    .into_iter()
                    .chain(["1000000"])
                    .map(String::from)
                    .collect::<Vec<_>>();
                let mut steps = Vec::new();
                for &r in rs {
                    let rooms = r.to_string();
                    let load = [
                        "--rooms",
                        &rooms,
                        "--publishers",
                        "1",
                        "--subscribers",
                        "1",
                        "--ramp",
                        "50",
                        "--duration",
                        duration,
                    ];
                    let plain = Step {
                        sfu_args: sfu_args.clone(),
                        ..step(format!("R={r}"), 2 * r, &load)
                    };
                    let recorded = Step {
                        record: true,
                        ..step(format!("R={r} recorded"), 2 * r, &load)
                    };
                    steps.push(plain.clone());
                    steps.push(Step {
                        sfu_args: plain.sfu_args,
                        ..recorded
                    });
                }
                steps
            }
            Scenario::Idle => {
                let ns: &[u32] = if quick { &[100] } else { &[100, 1000] };
                let mut joined_only = Vec::new();
                let mut with_transports = Vec::new();
                for &n in ns {
                    let rooms = (n / 10).to_string();
                    let joined = [
                        "--rooms",
                        &rooms,
                        "--publishers",
                        "10",
                        "--idle",
                        "--ramp",
                        "50",
                        "--duration",
                        duration,
                    ];
                    let mut only = joined.to_vec();
                    only.push("--no-transports");
                    joined_only.push(step(format!("{n} peers joined"), n, &only));
                    with_transports.push(Step {
                        ours_only: true,
                        ..step(format!("{n} peers with transports"), n, &joined)
                    });
                }
                joined_only.extend(with_transports);
                joined_only
            }
        }
    }
}
