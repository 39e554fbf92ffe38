//! Deterministic seeding: the same `--users/--conversations/--members/--seed`
//! always makes the same memberships, so a scenario and the server agree on
//! who is in which conversation without exchanging anything.

use super::Seed;
use super::store::{Store, StoreError};

pub fn user_id(i: u32) -> String {
    format!("u{i}")
}

pub fn conversation_id(j: u32) -> String {
    format!("c{j}")
}

/// splitmix64: a tiny, stable mixer. Stable across crate versions, unlike
/// `rand`'s generators, which matters because shards and servers must agree.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// The members of every conversation: users are shuffled by the seed, then
/// conversation j takes `members` consecutive users from position j·members,
/// wrapping around, so every user ends up in about the same number of them.
pub fn memberships(seed: &Seed) -> Vec<(String, Vec<String>)> {
    if seed.users == 0 {
        return Vec::new();
    }
    let mut order: Vec<u32> = (0..seed.users).collect();
    order.sort_by_key(|&i| (mix(seed.seed ^ mix(i as u64)), i));
    let k = seed.members.min(seed.users);
    (0..seed.conversations)
        .map(|j| {
            let start = (j as u64 * k as u64) % seed.users as u64;
            let members = (0..k as u64)
                .map(|i| user_id(order[((start + i) % seed.users as u64) as usize]))
                .collect();
            (conversation_id(j), members)
        })
        .collect()
}

/// Seeds a fresh database once. A restarted server must not re-add members
/// that a scenario removed, so a seeded database is never seeded again.
pub fn apply(store: &mut Store, seed: &Seed) -> Result<bool, StoreError> {
    if store.meta("seeded")?.is_some() {
        return Ok(false);
    }
    store.in_transaction(|s| {
        for i in 0..seed.users {
            s.ensure_user(&user_id(i))?;
        }
        for (conversation, members) in memberships(seed) {
            s.ensure_conversation(&conversation)?;
            for m in members {
                s.add_participant(&conversation, &m, 0)?;
            }
        }
        s.set_meta("seeded", &format!("{seed:?}"))
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_distinct_and_even() {
        let seed = Seed {
            users: 10,
            conversations: 5,
            members: 4,
            seed: 7,
        };
        let a = memberships(&seed);
        assert_eq!(a, memberships(&seed));
        assert_ne!(a, memberships(&Seed { seed: 8, ..seed }));
        let mut per_user = std::collections::HashMap::<String, usize>::new();
        for (_, members) in &a {
            let mut m = members.clone();
            m.sort();
            m.dedup();
            assert_eq!(m.len(), 4, "members are distinct");
            for u in members {
                *per_user.entry(u.clone()).or_default() += 1;
            }
        }
        assert!(per_user.values().all(|&n| n == 2), "{per_user:?}");
    }

    #[test]
    fn seeds_once() {
        let mut s = Store::in_memory();
        let seed = Seed {
            users: 3,
            conversations: 1,
            members: 3,
            seed: 1,
        };
        assert!(apply(&mut s, &seed).unwrap());
        s.remove_participant("c0", "u1").unwrap();
        assert!(!apply(&mut s, &seed).unwrap());
        assert_eq!(s.participants("c0").unwrap().len(), 2);
    }
}
