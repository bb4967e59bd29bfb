//! Finds where a value stands in a RON source, by path (`ports[1].device`), so that errors
//! found after parsing (a core that does not exist, a device that cannot be opened) still
//! point at FILE:LINE:COLUMN. It reads only as much of RON as it needs to step over values:
//! comments, strings (also raw), nesting, `Some(...)`.

/// One step of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// Where the value at `path` starts, if the source has it.
pub fn locate(source: &str, path: &[Step<'_>]) -> Option<Location> {
    let mut walker = Walker {
        src: source.as_bytes(),
        pos: 0,
    };
    walker.skip_trivia();
    let offset = walker.find(path)?;
    Some(location_of(source, offset))
}

/// Line and column of a byte offset.
pub fn location_of(source: &str, offset: usize) -> Location {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line,
        column: before[line_start..].chars().count() + 1,
    }
}

struct Walker<'s> {
    src: &'s [u8],
    pos: usize,
}

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        self.src[self.pos..].starts_with(s.as_bytes())
    }

    /// Whitespace, comments and `#![enable(...)]` attributes.
    fn skip_trivia(&mut self) {
        loop {
            while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                self.pos += 1;
            }
            if self.starts_with("//") {
                while self.peek().is_some_and(|c| c != b'\n') {
                    self.pos += 1;
                }
            } else if self.starts_with("/*") {
                let mut depth = 0;
                while self.pos < self.src.len() {
                    if self.starts_with("/*") {
                        depth += 1;
                        self.pos += 2;
                    } else if self.starts_with("*/") {
                        depth -= 1;
                        self.pos += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        self.pos += 1;
                    }
                }
            } else if self.starts_with("#![") {
                self.pos += 2;
                self.skip_value();
            } else {
                return;
            }
        }
    }

    fn identifier(&mut self) -> Option<&str> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            self.pos += 1;
        }
        (self.pos > start).then(|| std::str::from_utf8(&self.src[start..self.pos]).unwrap_or(""))
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.skip_trivia();
        (self.peek() == Some(c)).then(|| self.pos += 1)
    }

    fn skip_string(&mut self) {
        if self.peek() == Some(b'r') {
            self.pos += 1;
            let mut hashes = 0;
            while self.peek() == Some(b'#') {
                hashes += 1;
                self.pos += 1;
            }
            self.pos += 1; // opening quote
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while self.pos < self.src.len() && !self.src[self.pos..].starts_with(&close) {
                self.pos += 1;
            }
            self.pos = (self.pos + close.len()).min(self.src.len());
            return;
        }
        let quote = self.src[self.pos];
        self.pos += 1;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == b'\\' {
                self.pos += 1;
            } else if c == quote {
                break;
            }
        }
    }

    /// Steps over one value, stopping before the `,` or closing bracket that ends it.
    fn skip_value(&mut self) {
        let mut depth = 0usize;
        loop {
            self.skip_trivia();
            let Some(c) = self.peek() else { return };
            match c {
                b'"' | b'\'' => self.skip_string(),
                b'r' if matches!(self.src.get(self.pos + 1), Some(b'"' | b'#')) => {
                    self.skip_string()
                }
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    self.pos += 1;
                }
                b')' | b']' | b'}' => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                    self.pos += 1;
                    if depth == 0 {
                        // A bracketed value ends with its closing bracket.
                        return;
                    }
                }
                b',' if depth == 0 => return,
                _ => self.pos += 1,
            }
        }
    }

    fn find(&mut self, path: &[Step<'_>]) -> Option<usize> {
        self.skip_trivia();
        let Some((step, rest)) = path.split_first() else {
            return Some(self.pos);
        };
        // `Some(x)` holds x.
        if self.starts_with("Some") {
            let save = self.pos;
            self.pos += 4;
            if self.expect(b'(').is_some() {
                return self.find(path);
            }
            self.pos = save;
        }
        match *step {
            Step::Field(name) => {
                self.identifier(); // optional struct name
                self.expect(b'(')?;
                loop {
                    self.skip_trivia();
                    if self.peek() == Some(b')') {
                        return None;
                    }
                    let key = self.identifier()?.to_owned();
                    self.expect(b':')?;
                    if key == name {
                        return self.find(rest);
                    }
                    self.skip_value();
                    self.expect(b',')?;
                }
            }
            Step::Index(index) => {
                self.skip_trivia();
                match self.peek() {
                    Some(b'[' | b'(') => self.pos += 1,
                    _ => return None,
                }
                for _ in 0..index {
                    self.skip_trivia();
                    if matches!(self.peek(), Some(b']' | b')')) {
                        return None;
                    }
                    self.skip_value();
                    self.expect(b',')?;
                }
                self.skip_trivia();
                if matches!(self.peek(), Some(b']' | b')')) {
                    return None;
                }
                self.find(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    const SRC: &str = r#"#![enable(implicit_some)]
// comment with ( and "
(
    eal: (memory_mb: 256, /* nested /* block */ ] */ hugepages: false),
    workers: [1, 7],
    ports: [
        (name: "a,)", device: r"net_ring0", addresses: ["198.51.100.1/24"]),
        Port(
            name: "b",
            device: "net_af_packet1,iface=lb1",
        ),
    ],
    stats_file: Some("/tmp/x"),
)
"#;

    fn at(path: &[Step<'_>]) -> Option<(usize, usize)> {
        locate(SRC, path).map(|l| (l.line, l.column))
    }

    #[test]
    fn finds_fields_items_and_nested_values() {
        assert_eq!(at(&[Field("workers"), Index(1)]), Some((5, 18)));
        assert_eq!(at(&[Field("eal"), Field("hugepages")]), Some((4, 65)));
        assert_eq!(
            at(&[Field("ports"), Index(0), Field("device")]),
            Some((7, 31))
        );
        assert_eq!(
            at(&[Field("ports"), Index(1), Field("device")]),
            Some((10, 21))
        );
        assert_eq!(
            at(&[Field("ports"), Index(0), Field("addresses"), Index(0)]),
            Some((7, 57))
        );
        assert_eq!(at(&[Field("stats_file")]), Some((13, 17)));
        assert_eq!(at(&[Field("ports")]), Some((6, 12)));
    }

    #[test]
    fn missing_paths_are_none() {
        assert_eq!(at(&[Field("nope")]), None);
        assert_eq!(at(&[Field("workers"), Index(2)]), None);
        assert_eq!(at(&[Field("ports"), Index(5), Field("device")]), None);
        assert_eq!(locate("(", &[Field("x")]), None);
        assert_eq!(locate("", &[Index(0)]), None);
    }
}
