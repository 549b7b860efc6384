//! Sharding sources across instances: instance I of N runs the sources whose id hashes to I
//! modulo N. The hash (FNV-1a, 64 bits) is fixed, so every instance, on any machine and in
//! any version, agrees on who runs what.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// "I/N", 0 <= I < N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let bad = || format!("'{text}' is not I/N with 0 <= I < N (e.g. 0/2)");
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// The shard of a Kubernetes StatefulSet pod: its hostname ends in "-ORDINAL".
    pub fn from_hostname(hostname: &str, count: u32) -> Result<Shard, String> {
        let ordinal = hostname
            .rsplit_once('-')
            .and_then(|(_, o)| o.parse::<u32>().ok())
            .ok_or_else(|| {
                format!("the hostname '{hostname}' does not end in -ORDINAL (a StatefulSet pod)")
            })?;
        if ordinal >= count {
            return Err(format!(
                "pod ordinal {ordinal} (hostname '{hostname}') is not below the shard count {count}"
            ));
        }
        Ok(Shard {
            index: ordinal,
            count,
        })
    }

    pub fn owns(&self, source_id: &str) -> bool {
        fnv1a(source_id.as_bytes()) % self.count as u64 == self.index as u64
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Shard::parse("1/3"), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Shard::from_hostname("rtanalytics-2", 4),
            Ok(Shard { index: 2, count: 4 })
        );
        assert!(Shard::from_hostname("rtanalytics-4", 4).is_err());
        assert!(Shard::from_hostname("laptop", 4).is_err());
    }

    #[test]
    fn every_source_has_exactly_one_owner() {
        for count in 1..6 {
            let shards: Vec<Shard> = (0..count).map(|index| Shard { index, count }).collect();
            let mut per_shard = vec![0; count as usize];
            for i in 0..300 {
                let id = format!("cam-{i}");
                let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&id)).collect();
                assert_eq!(owners.len(), 1);
                per_shard[owners[0].index as usize] += 1;
            }
            // Spread evenly enough: no shard with less than half its share.
            assert!(
                per_shard.iter().all(|&n| n * 2 * count >= 300),
                "{per_shard:?}"
            );
        }
    }

    #[test]
    fn hash_is_stable() {
        // Fixed values: changing the hash would move cameras between running instances.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"cam1"), fnv1a(b"cam1"));
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
