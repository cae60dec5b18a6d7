//! A list of (name, value) byte pairs kept in one arena, so a connection that is reused for
//! many requests stops allocating once its buffers have grown. Names compare
//! case-insensitively. Used for request headers, response headers and the CGI environment.

use std::ops::Range;

#[derive(Default, Debug, Clone)]
pub struct HeaderList {
    arena: Vec<u8>,
    items: Vec<(Range<usize>, Range<usize>)>,
    /// One bit per name that may be in the list (see [`name_bit`]): most lookups are for
    /// headers a request does not have, and they end here.
    names: u64,
}

/// A name's bit in [`HeaderList::names`], from its length and its first and last letters
/// (case-insensitive). Names that share a bit just take the slow path.
fn name_bit(name: &[u8]) -> u64 {
    let (Some(&a), Some(&z)) = (name.first(), name.last()) else { return 1 };
    let h = (name.len() as u32)
        .wrapping_mul(31)
        .wrapping_add(u32::from(a | 0x20).wrapping_mul(7))
        .wrapping_add(u32::from(z | 0x20));
    1u64 << (h % 64)
}

impl HeaderList {
    pub fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
        self.names = 0;
    }

    /// Start the list over with `raw` as its storage, to which the following
    /// [`HeaderList::push_range`] calls refer (a parsed head is copied in once, not header by
    /// header).
    pub fn load_raw(&mut self, raw: &[u8]) {
        self.clear();
        self.arena.extend_from_slice(raw);
    }

    /// Add the header whose name and value lie at these ranges of the storage `load_raw` set.
    pub fn push_range(&mut self, name: Range<usize>, value: Range<usize>) {
        self.names |= name_bit(&self.arena[name.clone()]);
        self.items.push((name, value));
    }

    fn may_have(&self, name: &[u8]) -> bool {
        self.names & name_bit(name) != 0
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
        self.names |= name_bit(name);
        self.items.push((n, v));
    }

    /// Remove every value of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &[u8]) -> usize {
        if !self.may_have(name) {
            return 0;
        }
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
        if self.may_have(name) {
            for (i, (n, _)) in self.items.iter().enumerate() {
                if arena[n.clone()].eq_ignore_ascii_case(name) {
                    pos = Some(i);
                    break;
                }
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
                self.names |= name_bit(name);
                self.items.push((n, v));
            }
        }
    }

    /// First value of `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        if !self.may_have(name) {
            return None;
        }
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
        let none = !self.may_have(name);
        self.iter().filter(move |(n, _)| !none && n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Give back memory after an unusually large request (keeps small buffers for reuse).
    /// Drop the storage when it grew past `limit` bytes (a pooled list keeps no giant buffer).
    pub fn shrink(&mut self, limit: usize) {
        if self.arena.capacity() > limit {
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
        assert_eq!(h.get(b"new"), None);
    }

    #[test]
    fn lookups_are_case_insensitive_whatever_the_filter() {
        let names: &[&[u8]] = &[b"Host", b"ETag", b"If-None-Match", b"x", b"Content-Length", b"A-B-C-D"];
        let mut h = HeaderList::default();
        for n in names {
            h.append(n, b"v");
        }
        for n in names {
            assert_eq!(h.get(&n.to_ascii_uppercase()), Some(&b"v"[..]));
            assert_eq!(h.get(&n.to_ascii_lowercase()), Some(&b"v"[..]));
        }
        let mut raw = HeaderList::default();
        raw.load_raw(b"Accept: */*");
        raw.push_range(0..6, 8..11);
        assert_eq!(raw.get(b"ACCEPT"), Some(&b"*/*"[..]));
        assert_eq!(raw.get(b"Accept-Encoding"), None);
    }
}
