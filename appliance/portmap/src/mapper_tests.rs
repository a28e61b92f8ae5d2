use std::time::Duration;

use super::*;
use crate::fake::Fake;

const S: Duration = Duration::from_secs(1);

fn config() -> MapperConfig {
    MapperConfig {
        lease_secs: 20,
        ..MapperConfig::new(8443)
    }
}

fn mapper(fake: &Fake) -> Mapper<Fake> {
    Mapper::new(fake.clone(), config())
}

#[tokio::test(start_paused = true)]
async fn maps_the_first_port_and_renews_at_half_life() {
    let fake = Fake::new();
    let mut m = mapper(&fake);
    let delay = m.step().await;
    assert_eq!(delay, 10 * S, "next step at half of the 20 s lease");
    let status = m.status().clone();
    assert_eq!(status.state, State::Mapped);
    assert_eq!(status.external_port, Some(443));
    assert_eq!(
        status.internal,
        Some("192.168.1.20:8443".parse().expect("addr"))
    );
    assert_eq!(status.nat, Some(NatKind::Public));
    assert_eq!(status.diagnosis, None);
    assert!(status.lease_expires.is_some());
    assert_eq!(fake.with(|s| s.adds), 1);

    tokio::time::advance(delay).await;
    let delay = m.step().await;
    assert_eq!(delay, 10 * S);
    assert_eq!(fake.with(|s| s.adds), 2, "renewed by adding again");
    assert_eq!(m.status().renewals, 1);
}

#[tokio::test(start_paused = true)]
async fn verifies_between_renewals_with_a_long_lease() {
    let fake = Fake::new();
    let mut m = Mapper::new(fake.clone(), MapperConfig::new(8443));
    assert_eq!(
        m.step().await,
        60 * S,
        "checked every minute, renewed at 30 min"
    );
    tokio::time::advance(60 * S).await;
    m.step().await;
    assert_eq!(fake.with(|s| s.adds), 1, "a check is not a renewal");
    fake.with(|s| s.table.clear()); // the router restarted and forgot
    tokio::time::advance(60 * S).await;
    m.step().await;
    assert_eq!(fake.with(|s| s.table.len()), 1, "mapping is back");
    assert_eq!(m.status().readds, 1);
    assert_eq!(m.status().state, State::Mapped);
}

#[tokio::test(start_paused = true)]
async fn a_port_taken_by_another_host_moves_to_the_next() {
    let fake = Fake::new();
    fake.with(|s| s.taken.insert(443));
    let mut m = mapper(&fake);
    m.step().await;
    assert_eq!(m.status().external_port, Some(8443));
    assert!(
        m.status()
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("using port 8443")
    );

    fake.with(|s| s.taken.insert(8443));
    fake.with(|s| s.table.clear());
    let mut m = mapper(&fake);
    m.step().await;
    assert_eq!(m.status().state, State::Failed);
    assert!(
        m.status()
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("718")
    );
}

#[tokio::test(start_paused = true)]
async fn permanent_only_routers_get_lease_zero() {
    let fake = Fake::new();
    fake.with(|s| s.permanent_only = true);
    let mut m = mapper(&fake);
    assert_eq!(m.step().await, 60 * S);
    assert_eq!(m.status().lease_secs, Some(0));
    assert_eq!(m.status().lease_expires, None);
    assert_eq!(fake.with(|s| s.table[&443].lease_secs), 0);
    m.release().await;
    assert!(
        fake.with(|s| s.table.is_empty()),
        "a permanent mapping is removed"
    );
}

#[tokio::test(start_paused = true)]
async fn lan_address_change_moves_the_mapping() {
    let fake = Fake::new();
    let mut m = mapper(&fake);
    m.step().await;
    fake.with(|s| s.local_ip = "192.168.1.77".parse().expect("ip"));
    m.step().await;
    let internal = fake.with(|s| s.table[&443].internal);
    assert_eq!(internal, "192.168.1.77:8443".parse().expect("addr"));
    assert_eq!(fake.with(|s| s.removes), 1);
    assert_eq!(m.status().readds, 1);
}

#[tokio::test(start_paused = true)]
async fn no_gateway_backs_off_and_says_why() {
    let fake = Fake::new();
    fake.with(|s| s.present = false);
    let mut m = mapper(&fake);
    let waits = [m.step().await, m.step().await, m.step().await];
    assert_eq!(waits, [5 * S, 10 * S, 20 * S]);
    let status = m.status();
    assert_eq!(status.state, State::Failed);
    assert_eq!(status.failures, 3);
    assert!(
        status
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("No UPnP")
    );
    fake.with(|s| s.present = true);
    assert_eq!(m.step().await, 10 * S);
    assert_eq!(m.status().state, State::Mapped);
    assert_eq!(m.status().failures, 0);
}

#[tokio::test(start_paused = true)]
async fn reserved_external_address_is_double_nat() {
    let fake = Fake::new();
    fake.with(|s| {
        s.external_ip = "192.168.0.10".parse().expect("ip");
        s.refuse_add = Some(501);
    });
    let mut m = mapper(&fake);
    m.step().await;
    let status = m.status();
    assert_eq!(status.state, State::Failed);
    assert_eq!(status.nat, Some(NatKind::DoubleNat));
    assert_eq!(status.upnp_error, Some(501));
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("ActionFailed")
    );
    assert!(
        status
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("Double NAT")
    );

    // miniupnpd does not even tell a reserved address: 501 there too.
    fake.with(|s| s.refuse_external = true);
    m.step().await;
    assert_eq!(m.status().nat, Some(NatKind::DoubleNat));
    assert!(
        m.status()
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("Double NAT")
    );
    fake.with(|s| s.refuse_external = false);

    // CGNAT with a router that maps anyway: mapped, with a warning.
    fake.with(|s| {
        s.external_ip = "100.72.1.2".parse().expect("ip");
        s.refuse_add = None;
    });
    m.step().await;
    let status = m.status();
    assert_eq!(status.state, State::Mapped);
    assert_eq!(status.nat, Some(NatKind::Cgnat));
    assert!(
        status
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("Carrier-grade")
    );
}

#[tokio::test(start_paused = true)]
async fn router_outage_is_retried_then_recovered() {
    let fake = Fake::new();
    let mut m = mapper(&fake);
    m.step().await;
    fake.with(|s| {
        s.answering = false;
        s.table.clear();
    });
    tokio::time::advance(10 * S).await;
    assert_eq!(m.step().await, 5 * S);
    assert_eq!(m.status().state, State::Failed);
    assert!(
        m.status()
            .diagnosis
            .as_deref()
            .unwrap_or_default()
            .contains("stopped answering")
    );
    assert_eq!(m.step().await, 10 * S, "backoff grows");
    fake.with(|s| s.answering = true);
    m.step().await;
    assert_eq!(m.status().state, State::Mapped);
    assert_eq!(fake.with(|s| s.table.len()), 1);
}

#[tokio::test(start_paused = true)]
async fn release_removes_and_reports_disabled() {
    let fake = Fake::new();
    let mut m = mapper(&fake);
    m.step().await;
    m.release().await;
    assert!(fake.with(|s| s.table.is_empty()));
    assert_eq!(m.status().state, State::Disabled);
}
