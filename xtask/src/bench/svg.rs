//! A minimal SVG writer: rectangles, lines and text on a white page, enough for bar charts.

use std::fmt::Write;

/// Horizontal alignment of text relative to its x coordinate.
#[derive(Debug, Clone, Copy)]
pub enum Anchor {
    /// Text starts at x.
    Start,
    /// Text is centred on x.
    Middle,
    /// Text ends at x.
    End,
}

/// Text style.
#[derive(Debug, Clone, Copy)]
pub struct Font {
    /// Size in px.
    pub size: f64,
    /// Bold.
    pub bold: bool,
    /// Fill colour.
    pub fill: &'static str,
}

impl Font {
    /// Regular text of `size` px in near-black.
    pub const fn plain(size: f64) -> Self {
        Self {
            size,
            bold: false,
            fill: "#222",
        }
    }

    /// Bold text of `size` px in near-black.
    pub const fn bold(size: f64) -> Self {
        Self {
            size,
            bold: true,
            fill: "#222",
        }
    }

    /// The same font in another colour.
    pub const fn fill(self, fill: &'static str) -> Self {
        Self { fill, ..self }
    }
}

/// An SVG document being written.
pub struct Svg {
    out: String,
}

impl Svg {
    /// A `width` × `height` px document with a white background.
    pub fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif">"#
        );
        let _ = writeln!(
            out,
            r##"<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>"##
        );
        Self { out }
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: f64, y: f64, width: f64, height: f64, fill: &str) {
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"/>"#,
            width.max(0.0),
            height.max(0.0)
        );
    }

    /// A straight line, dashed when `dashed`.
    pub fn line(&mut self, from: (f64, f64), to: (f64, f64), stroke: &str, dashed: bool) {
        let dash = if dashed {
            r#" stroke-dasharray="4 3""#
        } else {
            ""
        };
        let _ = writeln!(
            self.out,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{stroke}" stroke-width="1"{dash}/>"#,
            from.0, from.1, to.0, to.1
        );
    }

    /// Text with its baseline at `y`.
    pub fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, font: Font) {
        let anchor = match anchor {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        };
        let weight = if font.bold {
            r#" font-weight="bold""#
        } else {
            ""
        };
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{}" text-anchor="{anchor}" fill="{}"{weight}>{}</text>"#,
            font.size,
            font.fill,
            escape(text)
        );
    }

    /// The finished document.
    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

/// `text` with XML's special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_text() {
        let mut svg = Svg::new(10.0, 10.0);
        svg.text(
            0.0,
            5.0,
            "fan-in 4→1 <QoS & \"x\">",
            Anchor::Start,
            Font::plain(10.0),
        );
        let doc = svg.finish();
        assert!(doc.contains("fan-in 4→1 &lt;QoS &amp; &quot;x&quot;&gt;</text>"));
        assert!(doc.starts_with("<svg ") && doc.ends_with("</svg>\n"));
    }
}
