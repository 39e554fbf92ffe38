//! Strings the checker must remember for the whole run (message ids,
//! temp_ids), each stored once, end to end in one buffer, and found by hash.
//!
//! A `HashMap<Box<str>, u32>` plus a `Vec<Box<str>>` for the way back cost
//! two heap blocks and 40 bytes of pointers per message on top of the id
//! itself; the checker's memory grows with every accepted message, so that
//! was most of it (`cargo bench --bench checker`). Here a string costs its
//! bytes, a 4-byte end offset and a 4-byte slot in the table.

use std::hash::BuildHasher;

use hashbrown::HashTable;

#[derive(Debug, Default)]
pub struct Ids {
    bytes: String,
    /// End of string i in `bytes` (it starts where string i − 1 ends).
    ends: Vec<u32>,
    table: HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

impl Ids {
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn str(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.table.find(h, |&i| self.str(i) == s).copied()
    }

    /// The index of `s`, added if new; true when it was added.
    pub fn insert(&mut self, s: &str) -> (u32, bool) {
        let h = self.hasher.hash_one(s);
        let Ids {
            bytes,
            ends,
            table,
            hasher,
        } = self;
        let str_of = |i: u32| {
            let i = i as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            &bytes[start..ends[i] as usize]
        };
        if let Some(&i) = table.find(h, |&i| str_of(i) == s) {
            return (i, false);
        }
        let i = ends.len() as u32;
        bytes.push_str(s);
        let end = u32::try_from(bytes.len()).expect("under 4 GiB of ids in one history");
        ends.push(end);
        let (bytes, ends) = (&*bytes, &*ends);
        table.insert_unique(h, i, |&j| {
            let j = j as usize;
            let start = if j == 0 { 0 } else { ends[j - 1] as usize };
            hasher.hash_one(&bytes[start..ends[j] as usize])
        });
        (i, true)
    }

    /// Every string with its index, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        (0..self.ends.len() as u32).map(|i| (i, self.str(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_each_string_once_and_finds_it() {
        let mut ids = Ids::default();
        assert!(ids.is_empty());
        let words: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
        for (n, w) in words.iter().enumerate() {
            assert_eq!(ids.insert(w), (n as u32, true));
        }
        assert_eq!(ids.insert(""), (5000, true));
        assert_eq!(ids.insert("m17"), (17, false));
        assert_eq!(ids.len(), 5001);
        for (n, w) in words.iter().enumerate() {
            assert_eq!(ids.get(w), Some(n as u32));
            assert_eq!(ids.str(n as u32), w);
        }
        assert_eq!(ids.get(""), Some(5000));
        assert_eq!(ids.str(5000), "");
        assert_eq!(ids.get("m5000"), None);
        assert_eq!(ids.get("m1 "), None);
        assert_eq!(ids.iter().nth(3), Some((3, "m3")));
        // Multi-byte strings keep their boundaries.
        let (e, _) = ids.insert("é→😀");
        assert_eq!(ids.str(e), "é→😀");
    }
}
