//! XPaths into the upload (no prefixes, 1-based indexes, e.g.
//! `/File/record[3]/CP-ISRecord/subject[1]`), built as a chain on the stack
//! while a record is read and written out only for a fault or a field the
//! domain rejects: a file read without faults formats none.

/// One step of an XPath and the steps above it.
#[derive(Clone, Copy)]
pub(crate) struct At<'p> {
    parent: Option<&'p At<'p>>,
    step: &'p str,
    /// 1-based position among same-named siblings; 0: none written.
    index: usize,
}

/// Deepest XPath the reader builds (the tree's own depth limit is 24).
const MAX_STEPS: usize = 32;

impl<'p> At<'p> {
    /// `/File`.
    pub(crate) fn file() -> At<'static> {
        At {
            parent: None,
            step: "File",
            index: 0,
        }
    }

    pub(crate) fn child(&'p self, step: &'p str) -> At<'p> {
        At {
            parent: Some(self),
            step,
            index: 0,
        }
    }

    /// `step[index]` (1-based).
    pub(crate) fn nth(&'p self, step: &'p str, index: usize) -> At<'p> {
        At {
            parent: Some(self),
            step,
            index,
        }
    }

    pub(crate) fn xpath(&self) -> String {
        self.join("")
    }

    /// The XPath with `/tail` appended (nothing when `tail` is empty).
    pub(crate) fn join(&self, tail: &str) -> String {
        let mut steps: [Option<&At<'_>>; MAX_STEPS] = [None; MAX_STEPS];
        let mut depth = 0;
        let mut here = Some(self);
        while let Some(at) = here {
            if depth < MAX_STEPS {
                steps[depth] = Some(at);
                depth += 1;
            }
            here = at.parent;
        }
        let mut out = String::with_capacity(128);
        for at in steps[..depth].iter().rev().flatten() {
            out.push('/');
            out.push_str(at.step);
            if at.index > 0 {
                out.push('[');
                out.push_str(&at.index.to_string());
                out.push(']');
            }
        }
        if !tail.is_empty() {
            out.push('/');
            out.push_str(tail);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::At;

    #[test]
    fn writes_steps_with_their_indexes() {
        let file = At::file();
        let record = file.nth("record", 3);
        let cp = record.child("CP-ISRecord");
        assert_eq!(file.xpath(), "/File");
        assert_eq!(cp.xpath(), "/File/record[3]/CP-ISRecord");
        assert_eq!(
            cp.join("subject[2]"),
            "/File/record[3]/CP-ISRecord/subject[2]"
        );
        assert_eq!(
            record.nth("x", 12).join("@value"),
            "/File/record[3]/x[12]/@value"
        );
    }
}
