//! Route labels: request paths mapped to a small, fixed set so label cardinality stays
//! bounded. The kernel matches the path (query cut off) exactly against the table
//! written into its `ROUTES` map; everything else is route 0, `other`.

use anyhow::bail;
use ratewire_common::types::{DEFAULT_ROUTES, ROUTES_MAX_ENTRIES, ROUTE_PATH_LEN};

/// Label of route id 0: any path not in the table.
pub const OTHER: &str = "other";

#[derive(Clone, Debug)]
pub struct RouteTable {
    /// Index + 1 is the route id.
    paths: Vec<String>,
}

impl RouteTable {
    pub fn new(paths: &[String]) -> anyhow::Result<RouteTable> {
        let paths: Vec<String> = if paths.is_empty() {
            DEFAULT_ROUTES.iter().map(|p| (*p).to_owned()).collect()
        } else {
            paths.to_vec()
        };
        if paths.len() >= ROUTES_MAX_ENTRIES as usize {
            bail!("--route: at most {} routes", ROUTES_MAX_ENTRIES - 1);
        }
        for path in &paths {
            // Shorter than the kernel's key, so a longer path cut to the key length can
            // never match a configured one by accident.
            if !path.starts_with('/') || path.len() >= ROUTE_PATH_LEN || path.contains(['?', ' ']) {
                bail!(
                    "--route '{path}': must start with '/', have no query or spaces, and be \
                     shorter than {ROUTE_PATH_LEN} bytes"
                );
            }
        }
        Ok(RouteTable { paths })
    }

    /// (kernel key, route id) pairs for the `ROUTES` map.
    pub fn kernel_entries(&self) -> impl Iterator<Item = ([u8; ROUTE_PATH_LEN], u16)> + '_ {
        self.paths.iter().enumerate().map(|(i, path)| {
            let mut key = [0u8; ROUTE_PATH_LEN];
            key[..path.len()].copy_from_slice(path.as_bytes());
            (key, i as u16 + 1)
        })
    }

    pub fn label(&self, id: u16) -> &str {
        match id {
            0 => OTHER,
            id => self
                .paths
                .get(id as usize - 1)
                .map_or(OTHER, String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_labels() {
        let t = RouteTable::new(&[]).unwrap();
        assert_eq!(t.label(0), "other");
        assert_eq!(t.label(1), "/v1/chat/completions");
        assert_eq!(t.label(99), "other");
        let (key, id) = t.kernel_entries().next().unwrap();
        assert_eq!(&key[..20], b"/v1/chat/completions");
        assert_eq!(key[20], 0);
        assert_eq!(id, 1);
    }

    #[test]
    fn rejects_bad_routes() {
        for bad in [
            "v1/x",
            "/a?b=1",
            "/this/path/is/much/too/long/for/the/kernel/key",
        ] {
            assert!(RouteTable::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
