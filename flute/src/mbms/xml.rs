//! A small element tree over quick-xml for the MBMS metadata documents:
//! namespaces resolved, attributes unescaped, text kept, each element's
//! line remembered; depth and size bounded.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{DescriptionError, checked_text};

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 32;
/// Most elements in one document.
const MAX_ELEMENTS: usize = 10_000;

/// One element.
#[derive(Clone, Debug, Default)]
pub(super) struct Element {
    /// Namespace URI (empty: none).
    pub(super) ns: String,
    /// Local name.
    pub(super) name: String,
    /// Attributes without a namespace (by local name), unescaped.
    pub(super) attributes: Vec<(String, String)>,
    /// Child elements.
    pub(super) children: Vec<Element>,
    /// Text content, unescaped and trimmed.
    pub(super) text: String,
    /// The line of its start tag (1-based).
    pub(super) line: usize,
}

impl Element {
    /// The attribute `name`, if present.
    pub(super) fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Children with local name `name` in namespace `ns`.
    pub(super) fn children<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns == ns && c.name == name)
    }

    /// The attribute `name` parsed, or an error naming the element's line.
    pub(super) fn parsed<T: std::str::FromStr>(
        &self,
        name: &str,
    ) -> Result<Option<T>, DescriptionError> {
        match self.attribute(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                DescriptionError::new(
                    self.line,
                    format!(
                        "{}@{name}: {:?} is not valid",
                        self.name,
                        v.chars().take(40).collect::<String>()
                    ),
                )
            }),
        }
    }
}

fn line_at(text: &str, pos: u64) -> usize {
    let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(text.len());
    1 + text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Parses `data` into its root element.
pub(super) fn parse(data: &[u8]) -> Result<Element, DescriptionError> {
    let text = checked_text(data)?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let before = reader.buffer_position();
        let read = reader.read_resolved_event().map_err(|e| e.to_string());
        let (ns, event) = match read {
            Ok(r) => r,
            Err(e) => {
                return Err(DescriptionError::new(
                    line_at(text, reader.error_position()),
                    format!("XML: {e}"),
                ));
            }
        };
        let line = line_at(text, before);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if root.is_some() {
                    return Err(DescriptionError::new(line, "more than one root element"));
                }
                count += 1;
                if count > MAX_ELEMENTS || stack.len() >= MAX_DEPTH {
                    return Err(DescriptionError::new(
                        line,
                        "too many or too deeply nested elements",
                    ));
                }
                let ns = match ns {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(DescriptionError::new(
                            line,
                            format!("unknown namespace prefix {:?}", String::from_utf8_lossy(&p)),
                        ));
                    }
                };
                let mut element = Element {
                    ns,
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    line,
                    ..Element::default()
                };
                for attr in e.attributes() {
                    let attr =
                        attr.map_err(|err| DescriptionError::new(line, format!("XML: {err}")))?;
                    if attr.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ans, local) = reader.resolve_attribute(attr.key);
                    if !matches!(ans, ResolveResult::Unbound) {
                        continue;
                    }
                    let value = attr
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|err| DescriptionError::new(line, format!("XML: {err}")))?;
                    element.attributes.push((
                        String::from_utf8_lossy(local.as_ref()).into_owned(),
                        value.into_owned(),
                    ));
                }
                if matches!(event, Event::Empty(_)) {
                    close(&mut stack, &mut root, element);
                } else {
                    stack.push(element);
                }
            }
            Event::End(_) => {
                let Some(mut element) = stack.pop() else {
                    return Err(DescriptionError::new(line, "end tag without a start"));
                };
                element.text = element.text.trim().to_string();
                close(&mut stack, &mut root, element);
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let raw = t
                        .decode()
                        .map_err(|e| DescriptionError::new(line, format!("XML: {e}")))?;
                    // Entities come as `GeneralRef` events: the text is plain.
                    if top.text.len() + raw.len() <= super::MAX_DESCRIPTION_LEN {
                        top.text.push_str(&raw);
                    }
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = r
                        .decode()
                        .map_err(|e| DescriptionError::new(line, format!("XML: {e}")))?;
                    if let Some(c) = r.resolve_char_ref().ok().flatten() {
                        top.text.push(c);
                    } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&name) {
                        top.text.push_str(s);
                    } else {
                        return Err(DescriptionError::new(
                            line,
                            format!("XML: unknown entity &{name};"),
                        ));
                    }
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(DescriptionError::new(
            line_at(text, reader.buffer_position()),
            "XML: unclosed element",
        ));
    }
    root.ok_or_else(|| DescriptionError::new(0, "no root element"))
}

fn close(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}
