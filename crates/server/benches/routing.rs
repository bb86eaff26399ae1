//! The routing hot paths under a fleet-shaped load, through `server::bench_api`:
//!
//! - topic matching: what a PUBLISH looks up in an index of 10k and of 100k subscriptions, for
//!   topics matched by one subscription, by a few, by several, and by none;
//! - retained lookup: what a SUBSCRIBE collects from 100,000 retained topics, for one device's
//!   sensor across the fleet (`fleet/+/telemetry/temp`), everything (`fleet/#`), one device
//!   (`fleet/dev-42/#`) and one exact topic.
//!
//! Every case checks its match count before it is timed, so a change in the mix cannot
//! silently measure something else.
//!
//! `cargo bench -p server --bench routing` (add `-- --quick` for a smoke run).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_main};
use server::bench_api::{IndexBench, RetainedBench};

/// The sensors of every device, one telemetry topic each.
const SENSORS: [&str; 8] = [
    "temp", "humidity", "pressure", "battery", "rssi", "voltage", "current", "lux",
];

/// Sessions on `fleet/+/alerts`: dashboards watching every device's alerts.
const DASHBOARDS: usize = 8;

/// `count` subscription filters, one session each, as a fleet back end would hold them:
///
/// - every device `fleet/dev-{d}` has its 8 sensors subscribed exactly
///   (`fleet/dev-{d}/telemetry/{sensor}`), as per-sensor consumers do;
/// - every 4th device is also watched whole (`fleet/dev-{d}/#`), as a device twin does;
/// - every 10th device's telemetry goes to a shared group of two ingest workers
///   (`$share/ingest/fleet/dev-{d}/telemetry/+`, one of them gets each message);
/// - [`DASHBOARDS`] sessions subscribe to `fleet/+/alerts`.
///
/// Devices are added until `count` filters exist; returns the filters and the device count.
fn subscriptions(count: usize) -> (Vec<String>, usize) {
    let mut filters = Vec::with_capacity(count);
    for _ in 0..DASHBOARDS {
        filters.push("fleet/+/alerts".to_owned());
    }
    let mut devices = 0;
    'devices: for d in 0.. {
        devices = d + 1;
        let mut device = Vec::new();
        for sensor in SENSORS {
            device.push(format!("fleet/dev-{d}/telemetry/{sensor}"));
        }
        if d % 4 == 0 {
            device.push(format!("fleet/dev-{d}/#"));
        }
        if d % 10 == 0 {
            for _ in 0..2 {
                device.push(format!("$share/ingest/fleet/dev-{d}/telemetry/+"));
            }
        }
        for filter in device {
            if filters.len() == count {
                break 'devices;
            }
            filters.push(filter);
        }
    }
    (filters, devices)
}

fn topic_matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for count in [10_000, 100_000] {
        let (filters, devices) = subscriptions(count);
        let index = IndexBench::new(filters.iter().map(String::as_str));
        // Devices from the middle of the fleet, so neither the first nor the last inserted.
        let middle = devices / 2 / 20 * 20;
        let cases = [
            // The exact filter only (the device is neither watched whole nor shared).
            (
                "one",
                format!("fleet/dev-{}/telemetry/humidity", middle + 1),
                1,
            ),
            // Exact, `fleet/dev-{d}/#`, and one member of the shared group.
            ("few", format!("fleet/dev-{middle}/telemetry/temp"), 3),
            // Every dashboard on `fleet/+/alerts`, and `fleet/dev-{d}/#`.
            (
                "several",
                format!("fleet/dev-{middle}/alerts"),
                DASHBOARDS + 1,
            ),
            // An unknown device: the lookup still walks `fleet/+`.
            ("none", "fleet/dev-unknown/telemetry/temp".to_owned(), 0),
        ];
        for (name, topic, expected) in cases {
            assert_eq!(
                index.matches(&topic),
                expected,
                "{topic} in {count} subscriptions"
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{}k-subs", count / 1000), name),
                &topic,
                |b, topic| b.iter(|| index.matches(black_box(topic))),
            );
        }
    }
    group.finish();
}

/// Retained topics: 8 sensors on each of 12,500 devices.
const RETAINED_DEVICES: usize = 12_500;

fn retained_lookup(c: &mut Criterion) {
    let topics: Vec<String> = (0..RETAINED_DEVICES)
        .flat_map(|d| SENSORS.map(|sensor| format!("fleet/dev-{d}/telemetry/{sensor}")))
        .collect();
    let store = RetainedBench::new(topics.iter().map(String::as_str));
    let mut group = c.benchmark_group("retained-100k");
    // Collecting 100,000 messages takes milliseconds: fewer samples keep the run short.
    group.sample_size(20);
    let cases = [
        ("exact", "fleet/dev-6250/telemetry/temp", 1),
        ("one-device", "fleet/dev-42/#", SENSORS.len()),
        ("plus", "fleet/+/telemetry/temp", RETAINED_DEVICES),
        ("all", "fleet/#", topics.len()),
    ];
    for (name, filter, expected) in cases {
        assert_eq!(store.matching(filter), expected, "retained for {filter}");
        group.bench_with_input(BenchmarkId::from_parameter(name), &filter, |b, filter| {
            b.iter(|| store.matching(black_box(filter)))
        });
    }
    group.finish();
}

/// `criterion_group!` defines an undocumented public function.
#[allow(missing_docs)]
mod harness {
    criterion::criterion_group!(benches, super::topic_matching, super::retained_lookup);
}

criterion_main!(harness::benches);
