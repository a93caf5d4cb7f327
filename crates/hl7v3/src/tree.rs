//! A streaming reader that hands out the document element's children one at
//! a time, each as a small tree borrowing the file: memory beyond the file
//! is bounded by the largest child (one `record`), not by the file's size.
//!
//! No DTD is read: a `<!DOCTYPE` anywhere is refused, and the only entity
//! references resolved are XML's five predefined ones and character
//! references; any other `&name;` is refused (undefined in a document
//! without a DTD, so not well-formed).

use std::borrow::Cow;

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

/// One child of the document element, whole: its elements in document
/// order in one arena, each naming where its subtree ends. Names, attribute
/// values and text borrow the file wherever XML needs no rewriting of them
/// (no reference, no line end to normalise), so reading a record allocates
/// almost nothing; the arena is reused from one record to the next.
#[derive(Default)]
pub(crate) struct Tree<'a> {
    nodes: Vec<NodeData<'a>>,
    attrs: Vec<(&'a str, Cow<'a, str>)>,
}

struct NodeData<'a> {
    ns: Ns,
    name: &'a str,
    /// This element's attributes: `attrs[attrs_from..attrs_to]`.
    attrs_from: u32,
    attrs_to: u32,
    /// Character data directly inside the element (whitespace kept).
    text: Cow<'a, str>,
    /// The index after this element's last descendant.
    end: u32,
}

impl<'a> Tree<'a> {
    /// The subtree's top element. Only called on a tree `next_child` filled.
    pub fn root(&self) -> Node<'_> {
        Node { tree: self, at: 0 }
    }
}

/// One element of a [`Tree`]: namespace, local name, unprefixed attributes,
/// children, text.
#[derive(Clone, Copy)]
pub(crate) struct Node<'t> {
    tree: &'t Tree<'t>,
    at: u32,
}

impl<'t> Node<'t> {
    fn data(&self) -> &'t NodeData<'t> {
        &self.tree.nodes[self.at as usize]
    }

    pub fn ns(&self) -> Ns {
        self.data().ns
    }

    pub fn name(&self) -> &'t str {
        self.data().name
    }

    pub fn text(&self) -> &'t str {
        &self.data().text
    }

    pub fn attr(&self, name: &str) -> Option<&'t str> {
        let data = self.data();
        self.tree.attrs[data.attrs_from as usize..data.attrs_to as usize]
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| &**v)
    }

    pub fn has_text(&self) -> bool {
        !self.text().trim().is_empty()
    }

    /// The element's children, in document order.
    pub fn children(&self) -> Children<'t> {
        Children {
            tree: self.tree,
            next: self.at + 1,
            end: self.data().end,
        }
    }

    pub fn first_child(&self) -> Option<Node<'t>> {
        self.children().next()
    }
}

pub(crate) struct Children<'t> {
    tree: &'t Tree<'t>,
    next: u32,
    end: u32,
}

impl<'t> Iterator for Children<'t> {
    type Item = Node<'t>;

    fn next(&mut self) -> Option<Node<'t>> {
        if self.next >= self.end {
            return None;
        }
        let node = Node {
            tree: self.tree,
            at: self.next,
        };
        self.next = self.tree.nodes[self.next as usize].end;
        Some(node)
    }
}

/// `part` as a slice of `input` when it lies inside it (the reader lends
/// out slices of the file), so it can outlive the event it came in.
fn within<'a>(input: &'a str, part: &str) -> Option<&'a str> {
    let offset = (part.as_ptr() as usize).checked_sub(input.as_ptr() as usize)?;
    input.get(offset..offset.checked_add(part.len())?)
}

/// The document element as [`Stream::open`] reads it: no children.
pub(crate) struct Root {
    pub ns: Ns,
    pub name: String,
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
    input: &'a str,
    reader: NsReader<&'a [u8]>,
    finished: bool,
    /// Indexes into the tree of the elements open in `next_child`.
    open: Vec<u32>,
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
    pub fn open(bytes: &'a [u8]) -> Result<(Self, Root), XmlError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.check_comments = true;
        let mut stream = Self {
            input: text,
            reader,
            finished: false,
            open: Vec::new(),
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
                    // Its attributes (namespace declarations) are checked
                    // for well-formedness and dropped.
                    let mut scratch = Tree::default();
                    stream.push_node(&mut scratch, ns, &start, "")?;
                    let name = scratch.nodes[0].name.to_owned();
                    return Ok((stream, Root { ns, name }));
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

    /// Appends the element `start` opens to `tree` (its subtree's end is
    /// set when it closes).
    fn push_node(
        &self,
        tree: &mut Tree<'a>,
        ns: Ns,
        start: &BytesStart<'a>,
        path: &str,
    ) -> Result<(), XmlError> {
        let position = self.position();
        let name = self.borrowed(start.local_name().as_ref())?;
        let attrs_from = tree.attrs.len() as u32;
        for attr in start.attributes() {
            let attr = attr.map_err(|_| XmlError::NotWellFormed { position })?;
            if attr.key.as_namespace_binding().is_some() || attr.key.prefix().is_some() {
                // Namespace declarations and prefixed attributes (xsi:…) are
                // not part of the CP-IS model: ignored.
                continue;
            }
            // Attribute-value normalisation (XML 1.0 §3.3.3) changes only
            // references and whitespace characters; anything else is the
            // file's own bytes.
            let raw: &str = &attr.value;
            let value = match raw.bytes().any(|b| b"&\t\n\r".contains(&b)) {
                false => Cow::Borrowed(self.borrowed(raw)?),
                true => Cow::Owned(
                    attr.normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| match e {
                            quick_xml::Error::Escape(_) => XmlError::UndefinedEntity,
                            _ => XmlError::NotWellFormed { position },
                        })?
                        .into_owned(),
                ),
            };
            if value.len() > MAX_ATTRIBUTE {
                return Err(XmlError::TooLarge {
                    path: format!("{path}/{}", shown(name)),
                });
            }
            let key = self.borrowed(attr.key.local_name().as_ref())?;
            tree.attrs.push((key, value));
        }
        tree.nodes.push(NodeData {
            ns,
            name,
            attrs_from,
            attrs_to: tree.attrs.len() as u32,
            text: Cow::Borrowed(""),
            end: u32::MAX,
        });
        Ok(())
    }

    /// A name or value the reader lent from the file, as a slice of it.
    fn borrowed(&self, part: &str) -> Result<&'a str, XmlError> {
        within(self.input, part).ok_or(XmlError::NotWellFormed {
            position: self.position(),
        })
    }

    /// Reads the next child of the document element, whole, into `tree`
    /// (emptied first); `false` after the document element's end (the rest
    /// of the document is checked too). `path` names the document element
    /// for [`XmlError::TooLarge`].
    pub fn next_child(&mut self, path: &str, tree: &mut Tree<'a>) -> Result<bool, XmlError> {
        tree.nodes.clear();
        tree.attrs.clear();
        self.open.clear();
        if self.finished {
            return Ok(false);
        }
        // Text directly in the document element is read and must be blank.
        loop {
            let (ns, event) = self.next_event()?;
            match event {
                Event::Start(start) => {
                    if self.open.len() >= MAX_DEPTH || tree.nodes.len() >= MAX_NODES {
                        return Err(XmlError::TooLarge {
                            path: format!("{path}/{}", local(&start)),
                        });
                    }
                    self.open.push(tree.nodes.len() as u32);
                    self.push_node(tree, ns, &start, path)?;
                }
                Event::End(_) => match self.open.pop() {
                    None => {
                        self.finish()?;
                        return Ok(false);
                    }
                    Some(done) => {
                        tree.nodes[done as usize].end = tree.nodes.len() as u32;
                        if self.open.is_empty() {
                            return Ok(true);
                        }
                    }
                },
                Event::Text(t) => {
                    let raw: &str = &t;
                    let content = match raw.contains('\r') {
                        false => Cow::Borrowed(self.borrowed(raw)?),
                        true => Cow::Owned(t.xml10_content().into_owned()),
                    };
                    self.push_text(tree, content, path)?;
                }
                Event::CData(t) => {
                    let content = Cow::Owned(t.xml10_content().into_owned());
                    self.push_text(tree, content, path)?;
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
                    self.push_text(tree, Cow::Owned(resolved), path)?;
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

    fn push_text(
        &self,
        tree: &mut Tree<'a>,
        content: Cow<'a, str>,
        path: &str,
    ) -> Result<(), XmlError> {
        match self.open.last() {
            Some(&open) => {
                let node = &mut tree.nodes[open as usize];
                if node.text.is_empty() {
                    node.text = content;
                } else {
                    node.text.to_mut().push_str(&content);
                }
                if node.text.len() > MAX_TEXT {
                    return Err(XmlError::TooLarge {
                        path: format!("{path}/{}", shown(node.name)),
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
