//! A streaming reader that hands out the document element's children one at
//! a time, each as a small owned tree: memory is bounded by the largest child
//! (one `record`), not by the file.
//!
//! No DTD is read: a `<!DOCTYPE` anywhere is refused, and the only entity
//! references resolved are XML's five predefined ones and character
//! references; any other `&name;` is refused (undefined in a document
//! without a DTD, so not well-formed).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};

/// The HL7 v3 namespace of every CP-IS element.
pub(crate) const HL7_NS: &str = "urn:hl7-org:v3";
/// The NHS localisation namespace of `npfitlc:contentId`.
pub(crate) const NPFIT_NS: &str = "NPFIT:HL7:Localisation";

/// Deepest nesting below the document element (a record is about 8 deep).
const MAX_DEPTH: usize = 24;
/// Most elements in one child of the document element (a full record is about 40).
const MAX_NODES: usize = 400;
/// Longest text of one element (names, an organisation name).
const MAX_TEXT: usize = 1_000;
/// Longest attribute value.
const MAX_ATTRIBUTE: usize = 1_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    Hl7,
    Npfit,
    Other,
}

/// One element: namespace, local name, unprefixed attributes, children, text.
#[derive(Clone)]
pub(crate) struct Node {
    pub ns: Ns,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
    /// Character data directly inside the element (whitespace kept).
    pub text: String,
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_text(&self) -> bool {
        !self.text.trim().is_empty()
    }
}

/// Why the document could not be read. Carries positions and element names
/// only, never content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum XmlError {
    NotUtf8,
    UnsupportedEncoding,
    Doctype,
    UndefinedEntity,
    NotWellFormed {
        position: u64,
    },
    /// Too deep, too many elements, or too long a text or attribute.
    TooLarge {
        path: String,
    },
    /// Character data directly in the document element.
    UnexpectedText {
        path: String,
    },
    NoDocumentElement,
}

pub(crate) struct Stream<'a> {
    reader: NsReader<&'a [u8]>,
    finished: bool,
}

fn ns_of(resolved: &ResolveResult<'_>) -> Ns {
    match resolved {
        ResolveResult::Bound(ns) if ns.0 == HL7_NS => Ns::Hl7,
        ResolveResult::Bound(ns) if ns.0 == NPFIT_NS => Ns::Npfit,
        _ => Ns::Other,
    }
}

impl<'a> Stream<'a> {
    /// Opens the document and reads up to its document element, which is
    /// returned without children.
    pub fn open(bytes: &'a [u8]) -> Result<(Self, Node), XmlError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = true;
        let mut stream = Self {
            reader,
            finished: false,
        };
        loop {
            let (ns, event) = stream.next_event()?;
            match event {
                Event::Decl(decl) => {
                    let position = stream.position();
                    match decl.encoding() {
                        None => {}
                        Some(Ok(enc)) if enc.eq_ignore_ascii_case("utf-8") => {}
                        Some(Ok(_)) => return Err(XmlError::UnsupportedEncoding),
                        Some(Err(_)) => return Err(XmlError::NotWellFormed { position }),
                    }
                    match decl.version() {
                        Ok(v) if v == "1.0" => {}
                        _ => return Err(XmlError::NotWellFormed { position }),
                    }
                }
                Event::Start(start) => {
                    let root = stream.node(ns, &start, "")?;
                    return Ok((stream, root));
                }
                Event::Text(t) if t.xml10_content().trim().is_empty() => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Eof => return Err(XmlError::NoDocumentElement),
                _ => {
                    return Err(XmlError::NotWellFormed {
                        position: stream.position(),
                    })
                }
            }
        }
    }

    fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    fn next_event(&mut self) -> Result<(Ns, Event<'a>), XmlError> {
        let position = self.position();
        let (resolved, event) = self
            .reader
            .read_resolved_event()
            .map_err(|_| XmlError::NotWellFormed { position })?;
        let ns = ns_of(&resolved);
        if let Event::DocType(_) = event {
            return Err(XmlError::Doctype);
        }
        Ok((ns, event))
    }

    fn node(&self, ns: Ns, start: &BytesStart<'_>, path: &str) -> Result<Node, XmlError> {
        let position = self.position();
        let name = start.local_name().as_ref().to_owned();
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|_| XmlError::NotWellFormed { position })?;
            if attr.key.as_namespace_binding().is_some() || attr.key.prefix().is_some() {
                // Namespace declarations and prefixed attributes (xsi:…) are
                // not part of the CP-IS model: ignored.
                continue;
            }
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| match e {
                    quick_xml::Error::Escape(_) => XmlError::UndefinedEntity,
                    _ => XmlError::NotWellFormed { position },
                })?;
            if value.len() > MAX_ATTRIBUTE {
                return Err(XmlError::TooLarge {
                    path: format!("{path}/{name}"),
                });
            }
            let key = attr.key.local_name().as_ref().to_owned();
            attrs.push((key, value.into_owned()));
        }
        Ok(Node {
            ns,
            name,
            attrs,
            children: Vec::new(),
            text: String::new(),
        })
    }

    /// The next child of the document element, whole, or `None` after the
    /// document element's end (the rest of the document is checked too).
    /// `path` names the document element for [`XmlError::TooLarge`].
    pub fn next_child(&mut self, path: &str) -> Result<Option<Node>, XmlError> {
        if self.finished {
            return Ok(None);
        }
        // Text directly in the document element is read and must be blank.
        let mut stack: Vec<Node> = Vec::new();
        let mut count = 0usize;
        loop {
            let (ns, event) = self.next_event()?;
            match event {
                Event::Start(start) => {
                    count += 1;
                    let here = format!("{path}/{}", local(&start));
                    if stack.len() >= MAX_DEPTH || count > MAX_NODES {
                        return Err(XmlError::TooLarge { path: here });
                    }
                    let node = self.node(ns, &start, path)?;
                    stack.push(node);
                }
                Event::End(_) => match stack.pop() {
                    None => {
                        self.finish()?;
                        return Ok(None);
                    }
                    Some(done) => match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(Some(done)),
                    },
                },
                Event::Text(t) => {
                    let content = t.xml10_content();
                    self.push_text(&mut stack, &content, path)?;
                }
                Event::CData(t) => {
                    let content = t.xml10_content();
                    self.push_text(&mut stack, &content, path)?;
                }
                Event::GeneralRef(r) => {
                    let resolved = if r.is_char_ref() {
                        r.resolve_char_ref()
                            .ok()
                            .flatten()
                            .map(|c| c.to_string())
                            .ok_or(XmlError::UndefinedEntity)?
                    } else {
                        quick_xml::escape::resolve_predefined_entity(&r.xml10_content())
                            .ok_or(XmlError::UndefinedEntity)?
                            .to_owned()
                    };
                    self.push_text(&mut stack, &resolved, path)?;
                }
                Event::Comment(_) | Event::PI(_) => {}
                // Empty elements are expanded into Start and End.
                Event::Empty(_) | Event::Decl(_) | Event::DocType(_) | Event::Eof => {
                    return Err(XmlError::NotWellFormed {
                        position: self.position(),
                    })
                }
            }
        }
    }

    fn push_text(&self, stack: &mut [Node], content: &str, path: &str) -> Result<(), XmlError> {
        match stack.last_mut() {
            Some(node) => {
                node.text.push_str(content);
                if node.text.len() > MAX_TEXT {
                    return Err(XmlError::TooLarge {
                        path: format!("{path}/{}", shown(&node.name)),
                    });
                }
                Ok(())
            }
            // Character data directly in the document element.
            None if content.trim().is_empty() => Ok(()),
            None => Err(XmlError::UnexpectedText {
                path: format!("{path}/text()"),
            }),
        }
    }

    /// After the document element: only comments, processing instructions
    /// and whitespace.
    fn finish(&mut self) -> Result<(), XmlError> {
        self.finished = true;
        loop {
            let (_, event) = self.next_event()?;
            match event {
                Event::Eof => return Ok(()),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.xml10_content().trim().is_empty() => {}
                _ => {
                    return Err(XmlError::NotWellFormed {
                        position: self.position(),
                    })
                }
            }
        }
    }
}

fn local(start: &BytesStart<'_>) -> String {
    shown(start.local_name().as_ref()).to_owned()
}

/// An element name as a location shows it: a name that is not plain ASCII
/// or holds a long run of digits (which could be an NHS number, put there by
/// whoever wrote the file) is shown as `*`. The schema's names have runs of
/// six digits at most.
pub(crate) fn shown(name: &str) -> &str {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let longest_digits = name
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    if plain && longest_digits < 8 {
        name
    } else {
        "*"
    }
}
