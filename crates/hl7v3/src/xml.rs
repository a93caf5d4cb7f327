//! A small XML writer for the messages cpis emits: UTF-8, the HL7 default
//! namespace and the `npfitlc` prefix on the document element, escaped
//! attribute values and text, no characters XML 1.0 forbids.

pub(crate) struct Xml {
    out: String,
}

fn push_escaped(out: &mut String, value: &str, attribute: bool) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            // Tab, newline and carriage return survive only in text; any
            // other control character is not allowed in XML 1.0.
            '\t' | '\n' | '\r' if !attribute => out.push(c),
            c if c.is_control() => out.push(' '),
            '\u{FFFE}' | '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
}

impl Xml {
    /// A document whose element `root` declares the HL7 and NPfIT namespaces.
    pub fn document(root: &str) -> Self {
        let mut out = String::with_capacity(4096);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<");
        out.push_str(root);
        out.push_str(" xmlns=\"urn:hl7-org:v3\" xmlns:npfitlc=\"NPFIT:HL7:Localisation\">");
        Self { out }
    }

    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            push_escaped(&mut self.out, value, true);
            self.out.push('"');
        }
    }

    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push('>');
        self
    }

    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.start(name, attrs);
        self.out.push_str("/>");
        self
    }

    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// `<name>text</name>`.
    pub fn text(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name, &[]);
        push_escaped(&mut self.out, text, false);
        self.close(name)
    }

    /// `<npfitlc:contentId root="…18.16" extension="TEMPLATE#class"/>`.
    pub fn content_id(&mut self, extension: &str) -> &mut Self {
        self.empty(
            "npfitlc:contentId",
            &[("root", crate::oid::TEMPLATE), ("extension", extension)],
        )
    }

    pub fn finish(mut self, root: &str) -> String {
        self.close(root);
        self.out.push('\n');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_drops_forbidden_characters() {
        let mut x = Xml::document("R");
        x.empty("a", &[("v", "<&\"'\u{1}>")])
            .text("t", "a&b<c>\u{0}\n");
        assert_eq!(
            x.finish("R"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:hl7-org:v3\" xmlns:npfitlc=\"NPFIT:HL7:Localisation\"><a v=\"&lt;&amp;&quot;&apos; &gt;\"/><t>a&amp;b&lt;c&gt; \n</t></R>\n"
        );
    }
}
