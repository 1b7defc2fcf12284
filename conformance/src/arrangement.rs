//! Who calls whom in a run of a test case, and test case patterns that can name an arrangement.
//!
//! A case runs with a third-party peer on one side wherever the peer can take that side: cases of
//! `TEST_MODE_SERVER` suites (they test servers) with the connect-es client calling our server,
//! cases of `TEST_MODE_CLIENT` suites (they test clients) with our client calling the connect-es
//! server, and cases of suites without a mode both ways. What a peer cannot do falls back to our
//! client against our server (or its emulation of the reference server), with a reason.
//!
//! Test case names stay the official runner's; the arrangement is a separate tag (`node-client`,
//! `node-server`, `ours`). A pattern (`--run`, known-failing files) may start with a tag in
//! brackets, `[node-server] Basic/**`, to match in that arrangement only; without one it matches
//! in every arrangement.

use std::path::Path;

use crate::suite::Pattern;

/// Who calls whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arrangement {
    /// The connect-es client calls our server: our server is under test.
    NodeClient,
    /// Our client calls the connect-es server: our client is under test.
    NodeServer,
    /// Our client calls our server, or our emulation of the reference server.
    Ours,
}

impl Arrangement {
    /// Every arrangement.
    pub const ALL: [Arrangement; 3] = [
        Arrangement::NodeClient,
        Arrangement::NodeServer,
        Arrangement::Ours,
    ];

    /// The tag in output and patterns.
    pub fn tag(self) -> &'static str {
        match self {
            Arrangement::NodeClient => "node-client",
            Arrangement::NodeServer => "node-server",
            Arrangement::Ours => "ours",
        }
    }

    /// The arrangement of a tag.
    pub fn from_tag(tag: &str) -> Option<Arrangement> {
        Arrangement::ALL.into_iter().find(|a| a.tag() == tag)
    }

    /// Who calls whom, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Arrangement::NodeClient => "connect-es client -> our server",
            Arrangement::NodeServer => "our client -> connect-es server",
            Arrangement::Ours => "our client <-> our server",
        }
    }

    /// Whether our client makes the call (so that what only the client decides is checked).
    pub fn our_client(self) -> bool {
        self != Arrangement::NodeClient
    }
}

/// A test case pattern, for every arrangement or for one.
#[derive(Clone, Debug)]
pub struct CasePattern {
    /// The arrangement it is limited to.
    pub arrangement: Option<Arrangement>,
    /// The pattern of test case names.
    pub pattern: Pattern,
}

impl CasePattern {
    /// Parses `PATTERN` or `[tag] PATTERN`.
    pub fn parse(text: &str) -> Result<CasePattern, String> {
        let text = text.trim();
        let Some(rest) = text.strip_prefix('[') else {
            return Ok(CasePattern {
                arrangement: None,
                pattern: Pattern::new(text),
            });
        };
        let (tag, pattern) = rest
            .split_once(']')
            .ok_or_else(|| format!("pattern {text:?}: no ] after the arrangement tag"))?;
        let arrangement = Arrangement::from_tag(tag.trim()).ok_or_else(|| {
            format!(
                "pattern {text:?}: unknown arrangement {tag:?} (one of {})",
                Arrangement::ALL.map(Arrangement::tag).join(", ")
            )
        })?;
        Ok(CasePattern {
            arrangement: Some(arrangement),
            pattern: Pattern::new(pattern.trim()),
        })
    }

    /// Whether it matches the case `name` run in `arrangement`.
    pub fn matches(&self, arrangement: Arrangement, name: &str) -> bool {
        self.arrangement.is_none_or(|a| a == arrangement) && self.pattern.matches(name)
    }
}

/// Reads a known-failing or known-flaky file: one pattern per line (optionally with an
/// arrangement tag), `#` comments and blank lines ignored.
pub fn load_case_patterns(path: &Path) -> Result<Vec<CasePattern>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| CasePattern::parse(l).map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_patterns() {
        let name = "Basic/HTTPVersion:2/Protocol:PROTOCOL_GRPC/Codec:CODEC_PROTO/Compression:COMPRESSION_IDENTITY/TLS:false/unary/success";
        let any = CasePattern::parse("Basic/**").unwrap();
        assert!(Arrangement::ALL.iter().all(|&a| any.matches(a, name)));
        let one = CasePattern::parse("[node-server] Basic/**").unwrap();
        assert!(one.matches(Arrangement::NodeServer, name));
        assert!(!one.matches(Arrangement::NodeClient, name));
        assert!(!one.matches(Arrangement::Ours, name));
        assert!(CasePattern::parse("[nobody] Basic/**").is_err());
        assert!(CasePattern::parse("[ours Basic/**").is_err());
    }
}
