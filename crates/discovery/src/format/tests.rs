//! Fixtures shaped exactly like what each ecosystem writes.

use base64::Engine;
use zkgate_config::{AdminState, MemberFormat};

use super::{decode, sniff, Child};

fn member(
    format: MemberFormat,
    endpoint: Option<&str>,
    name: &str,
    data: &str,
) -> zkgate_config::ServerConfig {
    match decode(format, endpoint, name, data.as_bytes()) {
        Ok(Child::Member(member)) => member,
        other => panic!("expected a member, got {other:?}"),
    }
}

#[test]
fn native_json_with_defaults_and_address_as_name() {
    let m = member(
        MemberFormat::Zkgate,
        None,
        "x",
        r#"{"address":"10.0.0.5:8080","weight":10,"state":"drain","zone":"a","tags":{}}"#,
    );
    assert_eq!(
        (m.address.to_string().as_str(), m.weight, m.state),
        ("10.0.0.5:8080", 10, AdminState::Drain)
    );
    let m = member(MemberFormat::Zkgate, None, "x", r#"{"address":"web-1:80"}"#);
    assert_eq!((m.weight, m.state), (1, AdminState::Ready));
    let m = member(MemberFormat::Zkgate, None, "10.0.0.5:8080", "");
    assert_eq!(m.address.to_string(), "10.0.0.5:8080");
}

#[test]
fn native_refuses_out_of_range_weights_bad_states_and_nameless_empty_data() {
    for (name, data) in [
        ("x", r#"{"address":"10.0.0.5:8080","weight":257}"#),
        ("x", r#"{"address":"10.0.0.5:8080","weight":-1}"#),
        ("x", r#"{"address":"10.0.0.5:8080","state":"up"}"#),
        ("x", r#"{"weight":1}"#),
        ("x", "not json"),
        ("server-1", ""),
    ] {
        assert!(
            decode(MemberFormat::Zkgate, None, name, data.as_bytes()).is_err(),
            "{name} {data}"
        );
    }
}

const FINAGLE_MEMBER: &str = r#"{"serviceEndpoint":{"host":"10.1.2.3","port":31337},"additionalEndpoints":{"http":{"host":"10.1.2.3","port":8080},"health":{"host":"10.1.2.3","port":8081}},"status":"ALIVE","shard":0}"#;

#[test]
fn serverset_alive_members_are_ready_and_others_get_nothing() {
    let m = member(
        MemberFormat::Serverset,
        None,
        "member_0000000001",
        FINAGLE_MEMBER,
    );
    assert_eq!(
        (m.address.to_string().as_str(), m.state),
        ("10.1.2.3:31337", AdminState::Ready)
    );
    let m = member(
        MemberFormat::Serverset,
        Some("http"),
        "member_0000000001",
        FINAGLE_MEMBER,
    );
    assert_eq!(m.address.to_string(), "10.1.2.3:8080");
    let stopping = FINAGLE_MEMBER.replace("ALIVE", "STOPPING");
    assert_eq!(
        member(
            MemberFormat::Serverset,
            None,
            "member_0000000002",
            &stopping
        )
        .state,
        AdminState::Maint
    );
    assert_eq!(
        decode(MemberFormat::Serverset, None, "leader_lock", b"x"),
        Ok(Child::NotAMember)
    );
    assert!(decode(
        MemberFormat::Serverset,
        Some("admin"),
        "member_1",
        FINAGLE_MEMBER.as_bytes()
    )
    .is_err());
}

#[test]
fn curator_instances_ignore_unknown_fields_and_disabled_means_maint() {
    let instance = r#"{"name":"web","id":"0f1c7a3e-5a9b-4c0e-8d2f-2b6a8f9e1c11","address":"10.2.0.7","port":8080,"sslPort":null,"payload":{"@class":"com.example.InstanceDetails","zone":"b"},"registrationTimeUTC":1732252800000,"serviceType":"DYNAMIC","uriSpec":{"parts":[{"value":"scheme","variable":true}]},"enabled":true,"futureField":1}"#;
    let m = member(MemberFormat::Curator, None, "0f1c7a3e", instance);
    assert_eq!(
        (m.address.to_string().as_str(), m.state),
        ("10.2.0.7:8080", AdminState::Ready)
    );
    let disabled = instance.replace(r#""enabled":true"#, r#""enabled":false"#);
    assert_eq!(
        member(MemberFormat::Curator, None, "id", &disabled).state,
        AdminState::Maint
    );
    let ssl_only = r#"{"name":"web","id":"1","address":"10.2.0.8","port":null,"sslPort":8443}"#;
    assert_eq!(
        member(MemberFormat::Curator, None, "1", ssl_only)
            .address
            .port,
        8443
    );
}

#[test]
fn nerve_registrations_decode_from_data_or_base64_names() {
    let json = r#"{"host":"10.3.0.9","port":3000,"name":"i-0abc","weight":5,"labels":{"az":"us-east-1a"}}"#;
    let m = member(MemberFormat::Nerve, None, "i-0abc_0000000042", json);
    assert_eq!(
        (m.address.to_string().as_str(), m.weight),
        ("10.3.0.9:3000", 5)
    );

    // Data whose URL-safe base64 contains `_` and `-`, as path encoding must cope with.
    let tricky = r#"{"host":"10.3.0.10","port":3001,"name":"i-?>?>","weight":2}"#;
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(tricky);
    assert!(encoded.contains('_') || encoded.contains('-'), "{encoded}");
    let name = format!("base64_{}_{}_0000000007", encoded.len(), encoded);
    let m = member(MemberFormat::Nerve, None, &name, "");
    assert_eq!(
        (m.address.to_string().as_str(), m.weight),
        ("10.3.0.10:3001", 2)
    );

    for bad in [
        "base64_5_abc_1",
        "base64_x_abc_1",
        "plain-name",
        "base64_4_!!!!_1",
    ] {
        assert!(
            decode(MemberFormat::Nerve, None, bad, b"").is_err(),
            "{bad}"
        );
    }
}

#[test]
fn sniff_names_the_format_that_understands_a_child() {
    assert_eq!(
        sniff("member_1", FINAGLE_MEMBER.as_bytes()).unwrap().0,
        MemberFormat::Serverset
    );
    assert_eq!(sniff("10.0.0.1:80", b"").unwrap().0, MemberFormat::Zkgate);
    assert!(sniff("junk", b"\xff\xfe").is_none());
}

#[test]
fn every_format_says_the_zone_where_its_ecosystem_keeps_it() {
    let zone = |format, name: &str, data: &str| {
        member(format, None, name, data)
            .zone
            .as_deref()
            .map(str::to_owned)
    };
    assert_eq!(
        zone(
            MemberFormat::Zkgate,
            "x",
            r#"{"address":"10.0.0.5:80","zone":"us-east-1a"}"#
        ),
        Some("us-east-1a".into())
    );
    assert_eq!(
        zone(
            MemberFormat::Serverset,
            "member_1",
            r#"{"serviceEndpoint":{"host":"10.1.2.3","port":80},"status":"ALIVE","metadata":{"zone":"b"}}"#
        ),
        Some("b".into())
    );
    let curator = r#"{"name":"web","address":"10.2.0.7","port":8080,"payload":{"@class":"x.Y","zone":"c","weight":7}}"#;
    let m = member(MemberFormat::Curator, None, "id", curator);
    assert_eq!((m.zone.as_deref(), m.weight), (Some("c"), 7));
    // A payload that is no object says nothing.
    let plain = r#"{"name":"web","address":"10.2.0.7","port":8080,"payload":"opaque"}"#;
    assert_eq!(member(MemberFormat::Curator, None, "id", plain).zone, None);
    let nerve = |labels: &str| format!(r#"{{"host":"10.3.0.9","port":3000,"labels":{labels}}}"#);
    assert_eq!(
        zone(MemberFormat::Nerve, "n", &nerve(r#"{"az":"d"}"#)),
        Some("d".into())
    );
    assert_eq!(
        zone(MemberFormat::Nerve, "n", &nerve(r#"{"zone":"e","az":"d"}"#)),
        Some("e".into())
    );
    assert_eq!(
        zone(MemberFormat::Zkgate, "x", r#"{"address":"10.0.0.5:80"}"#),
        None
    );
}

#[test]
fn a_zone_that_is_no_name_or_a_payload_weight_out_of_range_refuses_the_member() {
    for data in [
        r#"{"address":"10.0.0.5:80","zone":7}"#,
        r#"{"address":"10.0.0.5:80","zone":""}"#,
        r#"{"address":"10.0.0.5:80","zone":"has space"}"#,
    ] {
        let why = decode(MemberFormat::Zkgate, None, "x", data.as_bytes()).unwrap_err();
        assert!(why.contains("zone"), "{data}: {why}");
    }
    let heavy = r#"{"name":"web","address":"10.2.0.7","port":8080,"payload":{"weight":999}}"#;
    assert!(decode(MemberFormat::Curator, None, "id", heavy.as_bytes()).is_err());
}
