//! A list of (name, value) byte pairs kept in one arena, so a connection that is reused for
//! many requests stops allocating once its buffers have grown. Names compare
//! case-insensitively. Used for request headers, response headers and the CGI environment.

use std::ops::Range;

#[derive(Default, Debug, Clone)]
pub struct HeaderList {
    arena: Vec<u8>,
    items: Vec<(Range<usize>, Range<usize>)>,
}

impl HeaderList {
    pub fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push_bytes(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.arena.len();
        self.arena.extend_from_slice(b);
        start..self.arena.len()
    }

    pub fn append(&mut self, name: &[u8], value: &[u8]) {
        let n = self.push_bytes(name);
        let v = self.push_bytes(value);
        self.items.push((n, v));
    }

    /// Remove every value of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &[u8]) -> usize {
        let before = self.items.len();
        let arena = &self.arena;
        self.items.retain(|(n, _)| !arena[n.clone()].eq_ignore_ascii_case(name));
        before - self.items.len()
    }

    /// Replace every value of `name` by one `value`, keeping the position of the first.
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        let v = self.push_bytes(value);
        let arena = &self.arena;
        let mut pos = None;
        for (i, (n, _)) in self.items.iter().enumerate() {
            if arena[n.clone()].eq_ignore_ascii_case(name) {
                pos = Some(i);
                break;
            }
        }
        match pos {
            Some(i) => {
                self.items[i].1 = v;
                let arena = &self.arena;
                let mut idx = 0;
                self.items.retain(|(n, _)| {
                    let keep = idx <= i || !arena[n.clone()].eq_ignore_ascii_case(name);
                    idx += 1;
                    keep
                });
            }
            None => {
                let n = self.push_bytes(name);
                self.items.push((n, v));
            }
        }
    }

    /// First value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.items
            .iter()
            .find(|(n, _)| self.arena[n.clone()].eq_ignore_ascii_case(name))
            .map(|(_, v)| &self.arena[v.clone()])
    }

    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    pub fn at(&self, i: usize) -> Option<(&[u8], &[u8])> {
        self.items.get(i).map(|(n, v)| (&self.arena[n.clone()], &self.arena[v.clone()]))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.items.iter().map(|(n, v)| (&self.arena[n.clone()], &self.arena[v.clone()]))
    }

    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Give back memory after an unusually large request (keeps small buffers for reuse).
    pub fn shrink(&mut self) {
        if self.arena.capacity() > 16 * 1024 {
            self.arena = Vec::new();
            self.items = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_remove() {
        let mut h = HeaderList::default();
        h.append(b"Host", b"a");
        h.append(b"X-A", b"1");
        h.append(b"x-a", b"2");
        assert_eq!(h.get(b"x-A"), Some(&b"1"[..]));
        assert_eq!(h.get_all(b"X-A").count(), 2);
        h.set(b"X-a", b"3");
        assert_eq!(h.get_all(b"X-A").collect::<Vec<_>>(), vec![&b"3"[..]]);
        assert_eq!(h.at(1), Some((&b"X-A"[..], &b"3"[..])));
        h.set(b"New", b"n");
        assert_eq!(h.len(), 3);
        assert_eq!(h.remove(b"host"), 1);
        assert_eq!(h.get(b"Host"), None);
        h.clear();
        assert!(h.is_empty());
    }
}
