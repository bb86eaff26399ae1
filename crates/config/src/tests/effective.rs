//! The effective configuration as printed: its shapes, and that it reads back as itself.

use super::*;

#[test]
fn the_effective_configuration_reads_back_as_itself() {
    let yaml = "mqtt:\n  network: {port: '127.0.0.1:1884', securePort: 0, mtls: {user: null, required: true, \
                certificateVerification: {failureMode: fail-closed}}}\n  logging: {path: /l/m.log, level: debug, rotation: {maxSize: 1536, interval: 90M, path: /l/old}}\n  \
                limits: {maxPacketSize: null}\n  storage: {durability: interval}\nhttp: {securePort: 9443, cors: true, corsAccessList: ['https://a.example']}\n\
                tls: {certificate: /k/c.pem, privateKey: /k/k.pem, certificateAuthority: /k/ca.pem}\n\
                logging: {rotation: {maxSize: 2G, interval: 2D}}";
    for config in [Config::defaults(Path::new(ROOT)), load_yaml(yaml).config] {
        let shown = Value::serialize(&config).expect("serializes");
        let origins = BTreeMap::new();
        let mut reader = Reader::new(Path::new(ROOT), None, &origins);
        let mut again = Config::read(&mut reader, &Node::root(&shown));
        assert!(reader.problems.is_empty(), "{}", reader.problems);
        // Printed paths read back as configured ones; whether they were Harper's defaults is not printed.
        again.tls.origin = config.tls.origin;
        // Likewise which key named the mTLS CA: it is printed under mtls.
        if let (Some(again), Some(config)) =
            (&mut again.mqtt.network.mtls, &config.mqtt.network.mtls)
        {
            again.certificate_authority_source = config.certificate_authority_source;
        }
        assert_eq!(again, config);
    }
}

#[test]
fn the_effective_configuration_uses_the_file_shapes() {
    let shown = Value::serialize(Config::defaults(Path::new(ROOT))).expect("serializes");
    let at = |path: &str| shown.find_ref(path).cloned();
    assert_eq!(
        at("mqtt.network.port").and_then(|v| v.to_u128()),
        Some(1883)
    );
    assert_eq!(
        at("mqtt.network.mtls").and_then(|v| v.to_bool()),
        Some(false)
    );
    assert_eq!(at("mqtt.webSocket").and_then(|v| v.to_bool()), Some(true));
    assert_eq!(
        at("mqtt.logging.tag").and_then(|v| v.into_string()),
        Some("mqtt".into())
    );
    assert_eq!(
        at("mqtt.limits.connectTimeout").and_then(|v| v.to_u128()),
        Some(10_000)
    );
    assert_eq!(
        at("mqtt.storage.durability").and_then(|v| v.into_string()),
        Some("batch".into())
    );
    assert_eq!(
        at("logging.rotation.maxSize").and_then(|v| v.into_string()),
        Some("64M".into())
    );
    assert_eq!(
        at("mqtt.limits.handshakeTimeout").and_then(|v| v.to_u128()),
        Some(5_000)
    );
    assert_eq!(
        at("mqtt.limits.maxHandshakesPerAddress").and_then(|v| v.to_u128()),
        Some(128)
    );
    assert_eq!(
        at("rootPath").and_then(|v| v.into_string()),
        Some(ROOT.into())
    );
}
