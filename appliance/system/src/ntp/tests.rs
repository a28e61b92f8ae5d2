//! The time keeper against scripted NTP servers on loopback, with a fake clock.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use super::packet::{PACKET_LEN, Timestamp, unix_nanos};
use super::*;

/// How a scripted server answers its n-th request (counted from 0).
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// The host's time, stratum 2.
    Good,
    Silent,
    KissOfDeath,
    /// A reply with someone else's originate timestamp, then the good one.
    StrayThenGood,
}

/// A UDP server on loopback; returns its address and the arrival times of requests.
async fn server(
    script: impl Fn(usize) -> Answer + Send + 'static,
) -> (Server, Arc<Mutex<Vec<Instant>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = arrivals.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        for n in 0.. {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            seen.lock().expect("lock").push(Instant::now());
            let request = &buf[..len];
            let replies = match script(n) {
                Answer::Good => vec![reply(request, 2, *b"GPS\0")],
                Answer::Silent => vec![],
                Answer::KissOfDeath => vec![reply(request, 0, *b"RATE")],
                Answer::StrayThenGood => {
                    let mut stray = reply(request, 2, *b"GPS\0");
                    stray[31] ^= 0xff;
                    vec![stray, reply(request, 2, *b"GPS\0")]
                }
            };
            for r in replies {
                socket.send_to(&r, peer).await.expect("send");
            }
        }
    });
    (addr.to_string().parse().expect("server"), arrivals)
}

fn reply(request: &[u8], stratum: u8, reference_id: [u8; 4]) -> [u8; PACKET_LEN] {
    let now = Timestamp::from_unix_nanos(unix_nanos(SystemTime::now())).0;
    let mut b = [0u8; PACKET_LEN];
    b[0] = (4 << 3) | 4;
    b[1] = stratum;
    b[12..16].copy_from_slice(&reference_id);
    b[24..32].copy_from_slice(&request[40..48]);
    b[32..40].copy_from_slice(&now.to_be_bytes());
    b[40..48].copy_from_slice(&now.to_be_bytes());
    b
}

const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test]
async fn steps_a_clock_that_is_far_off() {
    let (server, _) = server(|_| Answer::Good).await;
    let clock = FakeClock::off_by(-1000.0);
    let sample = sync_once(&[server], &clock, TIMEOUT).await.expect("sample");
    assert_eq!(sample.stratum, 2);
    let offset = sample.measurement.offset.0 as f64 / 1e9;
    assert!((offset - 1000.0).abs() < 0.2, "offset {offset}");
    let adjusted = adjust(&clock, &sample, STEP_THRESHOLD).expect("step");
    assert!(
        matches!(adjusted, Adjustment::Stepped { .. }),
        "{adjusted:?}"
    );
    assert!(
        clock.error_secs().abs() < 0.2,
        "still off by {} s",
        clock.error_secs()
    );
}

#[tokio::test]
async fn leaves_a_clock_that_is_close() {
    let (server, _) = server(|_| Answer::Good).await;
    let clock = FakeClock::off_by(0.3);
    let sample = sync_once(&[server], &clock, TIMEOUT).await.expect("sample");
    assert_eq!(
        adjust(&clock, &sample, STEP_THRESHOLD).expect("adjust"),
        Adjustment::InSync
    );
    assert!(clock.steps().is_empty());
}

#[tokio::test]
async fn asks_the_next_server_when_one_is_silent_or_sends_a_kiss() {
    let (silent, _) = server(|_| Answer::Silent).await;
    let (kiss, _) = server(|_| Answer::KissOfDeath).await;
    let (good, _) = server(|_| Answer::Good).await;
    let clock = FakeClock::off_by(0.0);
    let err = sync_once(&[silent.clone(), kiss.clone()], &clock, TIMEOUT)
        .await
        .expect_err("no good server");
    assert!(err.to_string().contains("RATE"), "{err}");
    let sample = sync_once(&[silent, kiss, good.clone()], &clock, TIMEOUT)
        .await
        .expect("third answers");
    assert_eq!(sample.server.to_string(), good.to_string());
}

#[tokio::test]
async fn ignores_datagrams_that_do_not_answer_our_request() {
    let (server, _) = server(|_| Answer::StrayThenGood).await;
    let clock = FakeClock::off_by(50.0);
    let sample = sync_once(&[server], &clock, TIMEOUT).await.expect("sample");
    assert!((sample.measurement.offset.0 as f64 / 1e9 + 50.0).abs() < 0.2);
}

#[tokio::test]
async fn worker_retries_with_a_growing_pause_then_steps_and_waits_for_the_resync() {
    let (server, arrivals) = server(|n| if n < 4 { Answer::Silent } else { Answer::Good }).await;
    let clock = FakeClock::off_by(-3600.0);
    let settings = Settings {
        servers: vec![server],
        step_threshold: STEP_THRESHOLD,
        resync_interval: Duration::from_secs(3600),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        query_timeout: Duration::from_millis(200),
    };
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(keep_time(settings, clock.clone(), shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while clock.steps().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(clock.steps().len(), 1, "stepped once the server answered");
    assert!(
        clock.error_secs().abs() < 0.2,
        "off by {} s",
        clock.error_secs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let arrivals = arrivals.lock().expect("lock").clone();
    assert_eq!(arrivals.len(), 5, "no request before the hourly resync");
    // Each gap is the 200 ms timeout plus the pause: 100, 200, 400, then capped at 400 ms.
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let wanted = [300, 400, 600, 600];
    for (gap, ms) in gaps.iter().zip(wanted) {
        let ms = Duration::from_millis(ms);
        assert!(
            *gap >= ms && *gap < ms + Duration::from_millis(350),
            "gaps {gaps:?}"
        );
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), worker)
        .await
        .expect("stops on shutdown")
        .expect("no panic");
}
