//! A frontend's routes in their order, first match wins. With many routes,
//! those naming an exact host are also indexed by it, so that a request
//! looks at the routes of its own host (and at those without an exact host)
//! rather than at every route: 1,000 host routes cost what a few do.

use std::collections::HashMap;

use zkgate_config::HostPattern;

use crate::route::{RequestHeaders, Route};
use crate::server::FastHash;

/// From this many routes on, exact hosts are indexed.
const INDEXED_FROM: usize = 16;
/// Host names are at most 253 bytes; a longer request host matches no
/// exact route.
const MAX_HOST: usize = 255;

/// The routes of a frontend.
pub(crate) struct Routes {
    list: Vec<Route>,
    index: Option<HostIndex>,
}

/// Route positions by exact host (lowercase), and the positions of routes
/// without one (no host, or a `*.suffix`), each in ascending order.
struct HostIndex {
    /// An unkeyed hash is safe here: the keys are the configuration's,
    /// fixed when the table is built; a client's host is only looked up.
    by_host: HashMap<Box<[u8]>, Box<[u32]>, FastHash>,
    others: Box<[u32]>,
}

impl Routes {
    pub(crate) fn new(list: Vec<Route>) -> Self {
        let index = (list.len() >= INDEXED_FROM).then(|| {
            let mut by_host: HashMap<Box<[u8]>, Vec<u32>, FastHash> = HashMap::default();
            let mut others = Vec::new();
            for (i, route) in list.iter().enumerate() {
                match &route.host {
                    Some(HostPattern::Exact(name)) => by_host
                        .entry(name.as_bytes().into())
                        .or_default()
                        .push(i as u32),
                    _ => others.push(i as u32),
                }
            }
            HostIndex {
                by_host: by_host
                    .into_iter()
                    .map(|(host, at)| (host, at.into_boxed_slice()))
                    .collect(),
                others: others.into_boxed_slice(),
            }
        });
        Routes { list, index }
    }

    /// The first route that matches. `host` is the request's host without
    /// its port, in any case.
    #[inline]
    pub(crate) fn find<H: RequestHeaders + ?Sized>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        headers: &H,
    ) -> Option<&Route> {
        let Some(index) = &self.index else {
            return self
                .list
                .iter()
                .find(|route| route.matches(host, path, headers));
        };
        let mut lower = [0u8; MAX_HOST];
        let exact: &[u32] = match host {
            Some(host) if host.len() <= MAX_HOST => {
                let lower = &mut lower[..host.len()];
                lower.copy_from_slice(host);
                lower.make_ascii_lowercase();
                index.by_host.get(&*lower).map_or(&[], |at| at)
            }
            _ => &[],
        };
        // Both lists ascend: merged, they visit the candidates in the
        // routes' own order, so the first match is the same as without the
        // index.
        let (mut a, mut b) = (exact.iter().peekable(), index.others.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let route = &self.list[*next? as usize];
            if route.matches(host, path, headers) {
                return Some(route);
            }
        }
    }
}
