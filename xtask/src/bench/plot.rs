//! The two charts of a run, as SVG: throughput per scenario (horizontal grouped bars, ours and
//! mosquitto, on a log scale with the ratio beside each pair) and latency percentiles (vertical
//! grouped bars, linear µs).

use super::Figure;
use super::svg::{Anchor, Font, Svg};

const OURS: &str = "#2f6fd6";
const MOSQUITTO: &str = "#e8833a";
const GRID: &str = "#d8d8d8";
const MUTED: &str = "#777";
const BAD: &str = "#c62828";

/// One group of two bars.
pub struct Group<'a> {
    /// The scenario or percentile.
    pub label: &'a str,
    /// Our broker's figure.
    pub ours: Figure,
    /// mosquitto's figure.
    pub mosquitto: Figure,
}

/// Throughput chart: one pair of bars per scenario on a log axis, ratio ours / mosquitto on the
/// right.
pub fn throughput(groups: &[Group], subtitle: &str) -> String {
    const WIDTH: f64 = 980.0;
    const X0: f64 = 300.0;
    const X1: f64 = 820.0;
    const TOP: f64 = 96.0;
    const ROW: f64 = 42.0;
    let height = TOP + ROW * groups.len() as f64 + 56.0;
    let mut svg = Svg::new(WIDTH, height);
    svg.text(
        20.0,
        28.0,
        "Throughput: ours vs mosquitto (higher is better)",
        Anchor::Start,
        Font::bold(17.0),
    );
    svg.text(
        20.0,
        48.0,
        subtitle,
        Anchor::Start,
        Font::plain(12.0).fill(MUTED),
    );
    legend(&mut svg, 20.0, 70.0);
    svg.text(
        WIDTH - 20.0,
        84.0,
        "ours / mosquitto",
        Anchor::End,
        Font::bold(12.0),
    );

    let (lo, hi) = decades(groups);
    let x = |v: f64| X0 + (v.log10() - lo) / (hi - lo) * (X1 - X0);
    let bottom = TOP + ROW * groups.len() as f64;
    // Decades, labelled, with 2× and 5× as faint dashes.
    for decade in lo as i32..=hi as i32 {
        let v = 10f64.powi(decade);
        svg.line((x(v), TOP - 6.0), (x(v), bottom), GRID, false);
        svg.text(
            x(v),
            bottom + 16.0,
            &power_label(v),
            Anchor::Middle,
            Font::plain(11.0).fill(MUTED),
        );
        if decade < hi as i32 {
            for m in [2.0, 5.0] {
                svg.line((x(v * m), TOP - 6.0), (x(v * m), bottom), GRID, true);
            }
        }
    }
    svg.text(
        (X0 + X1) / 2.0,
        bottom + 36.0,
        "per second, log scale: messages delivered (fan-in), deliveries (fan-out), connections (idle)",
        Anchor::Middle,
        Font::plain(11.0).fill(MUTED),
    );

    for (i, g) in groups.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        svg.text(X0 - 10.0, y + 23.0, g.label, Anchor::End, Font::plain(12.5));
        for (j, (figure, colour)) in [(g.ours, OURS), (g.mosquitto, MOSQUITTO)]
            .into_iter()
            .enumerate()
        {
            let top = y + 5.0 + 16.0 * j as f64;
            match figure {
                Figure::Value(v) if v > 0.0 => {
                    svg.rect(X0, top, x(v.max(10f64.powf(lo))) - X0, 14.0, colour);
                    svg.text(
                        x(v) + 5.0,
                        top + 11.0,
                        &human(v),
                        Anchor::Start,
                        Font::plain(11.0),
                    );
                }
                Figure::Value(_) => {
                    svg.text(X0 + 4.0, top + 11.0, "0", Anchor::Start, Font::plain(11.0))
                }
                Figure::Failed => svg.text(
                    X0 + 4.0,
                    top + 11.0,
                    "failed",
                    Anchor::Start,
                    Font::bold(11.0).fill(BAD),
                ),
                Figure::NotApplicable => svg.text(
                    X0 + 4.0,
                    top + 11.0,
                    "n/a",
                    Anchor::Start,
                    Font::plain(11.0).fill(MUTED),
                ),
                Figure::NotMeasured => svg.text(
                    X0 + 4.0,
                    top + 11.0,
                    "not measured",
                    Anchor::Start,
                    Font::plain(11.0).fill(MUTED),
                ),
            }
        }
        if let (Some(a), Some(b)) = (g.ours.value(), g.mosquitto.value())
            && b > 0.0
        {
            let ratio = a / b;
            let font = Font::bold(13.0).fill(if ratio >= 1.0 { "#1b7a3a" } else { BAD });
            svg.text(
                WIDTH - 20.0,
                y + 24.0,
                &format!("×{ratio:.2}"),
                Anchor::End,
                font,
            );
        }
    }
    svg.finish()
}

/// Latency chart: one pair of bars per percentile on a log µs axis (tails are often tens of times
/// the median, which a linear axis would flatten to nothing).
pub fn latency(groups: &[Group], title: &str, subtitle: &str) -> String {
    const WIDTH: f64 = 680.0;
    const HEIGHT: f64 = 420.0;
    const X0: f64 = 70.0;
    const X1: f64 = 650.0;
    const Y_TOP: f64 = 100.0;
    const Y_BOTTOM: f64 = 370.0;
    const BAR: f64 = 44.0;
    let mut svg = Svg::new(WIDTH, HEIGHT);
    svg.text(20.0, 28.0, title, Anchor::Start, Font::bold(17.0));
    svg.text(
        20.0,
        48.0,
        subtitle,
        Anchor::Start,
        Font::plain(12.0).fill(MUTED),
    );
    legend(&mut svg, 20.0, 70.0);

    let (lo, hi) = decades(groups);
    let y = |v: f64| Y_BOTTOM - (v.max(1.0).log10() - lo) / (hi - lo) * (Y_BOTTOM - Y_TOP);
    for decade in lo as i32..=hi as i32 {
        let v = 10f64.powi(decade);
        svg.line((X0, y(v)), (X1, y(v)), GRID, decade > lo as i32);
        svg.text(
            X0 - 8.0,
            y(v) + 4.0,
            &power_micros(v),
            Anchor::End,
            Font::plain(11.0).fill(MUTED),
        );
    }
    svg.text(
        X0,
        HEIGHT - 8.0,
        "log scale",
        Anchor::Start,
        Font::plain(11.0).fill(MUTED),
    );

    let slot = (X1 - X0) / groups.len().max(1) as f64;
    for (i, g) in groups.iter().enumerate() {
        let centre = X0 + slot * (i as f64 + 0.5);
        svg.text(
            centre,
            Y_BOTTOM + 20.0,
            g.label,
            Anchor::Middle,
            Font::bold(12.5),
        );
        for (j, (figure, colour)) in [(g.ours, OURS), (g.mosquitto, MOSQUITTO)]
            .into_iter()
            .enumerate()
        {
            let left = centre - BAR - 3.0 + (BAR + 6.0) * j as f64;
            let mid = left + BAR / 2.0;
            match figure {
                Figure::Value(v) => {
                    svg.rect(left, y(v), BAR, Y_BOTTOM - y(v), colour);
                    svg.text(
                        mid,
                        y(v) - 5.0,
                        &micros(v),
                        Anchor::Middle,
                        Font::plain(11.0),
                    );
                }
                Figure::Failed => svg.text(
                    mid,
                    Y_BOTTOM - 6.0,
                    "failed",
                    Anchor::Middle,
                    Font::bold(11.0).fill(BAD),
                ),
                Figure::NotApplicable | Figure::NotMeasured => svg.text(
                    mid,
                    Y_BOTTOM - 6.0,
                    "n/a",
                    Anchor::Middle,
                    Font::plain(11.0).fill(MUTED),
                ),
            }
        }
    }
    svg.line((X0, Y_BOTTOM), (X1, Y_BOTTOM), "#444", false);
    svg.finish()
}

/// The decades (log10) spanning every positive figure of `groups`: at least one decade wide.
fn decades(groups: &[Group]) -> (f64, f64) {
    let values: Vec<f64> = groups
        .iter()
        .flat_map(|g| [g.ours.value(), g.mosquitto.value()])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    if values.is_empty() {
        return (0.0, 1.0);
    }
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = values.iter().copied().fold(0.0, f64::max).log10().ceil();
    (lo, hi.max(lo + 1.0))
}

/// The colour key: ours, mosquitto.
fn legend(svg: &mut Svg, x: f64, y: f64) {
    svg.rect(x, y - 10.0, 12.0, 12.0, OURS);
    svg.text(
        x + 18.0,
        y,
        "ours (harper-mqtt)",
        Anchor::Start,
        Font::plain(12.0),
    );
    svg.rect(x + 150.0, y - 10.0, 12.0, 12.0, MOSQUITTO);
    svg.text(x + 168.0, y, "mosquitto", Anchor::Start, Font::plain(12.0));
}

/// A duration in µs for a label: 73 µs, 450 µs, 2.3 ms, 12 ms, 1.5 s.
fn micros(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1} s", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0} ms", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

/// A power of ten of µs for an axis: 10 µs, 100 µs, 1 ms, 10 ms, 1 s.
fn power_micros(v: f64) -> String {
    if v >= 1e6 {
        format!("{} s", v / 1e6)
    } else if v >= 1e3 {
        format!("{} ms", v / 1e3)
    } else {
        format!("{v} µs")
    }
}

/// A power of ten for an axis: 1k, 10k, 100k, 1M.
fn power_label(v: f64) -> String {
    if v >= 1e9 {
        format!("{}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// `v` in few characters: 73, 4.6k, 338k, 4.56M.
pub fn human(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers_are_short() {
        assert_eq!(human(73.0), "73");
        assert_eq!(human(4_564.0), "4.6k");
        assert_eq!(human(338_671.0), "339k");
        assert_eq!(human(4_564_275.0), "4.56M");
        assert_eq!(power_label(1e3), "1k");
        assert_eq!(power_label(1e7), "10M");
        assert_eq!(power_label(10.0), "10");
    }

    #[test]
    fn durations_read_as_time() {
        assert_eq!(micros(73.0), "73 µs");
        assert_eq!(micros(2_263.0), "2.3 ms");
        assert_eq!(micros(10_062.0), "10 ms");
        assert_eq!(power_micros(1e3), "1 ms");
        assert_eq!(power_micros(100.0), "100 µs");
    }

    #[test]
    fn charts_draw_every_group_and_mark_failures() {
        let groups = [
            Group {
                label: "fan-in 4→1, QoS 1, msg/s",
                ours: Figure::Value(338_671.0),
                mosquitto: Figure::Value(72_582.0),
            },
            Group {
                label: "fan-in 4→1, QoS 1, WebSocket, msg/s",
                ours: Figure::Failed,
                mosquitto: Figure::NotApplicable,
            },
        ];
        let doc = throughput(&groups, "test");
        assert!(doc.contains("×4.67"));
        assert!(doc.contains(">failed</text>") && doc.contains(">n/a</text>"));
        let doc = latency(&groups, "latency", "test");
        assert!(doc.contains(">73 ms</text>") && doc.contains(">n/a</text>"));
    }
}
