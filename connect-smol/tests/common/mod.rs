//! The smol adapter under the shared end-to-end matrix.

#![allow(dead_code, unreachable_pub)]

use connect_smol::{SmolRuntime, SmolTransport};
use connect_testkit::hyper::HyperTestAdapter;

/// Serves with [`connect_smol::Server`], calls with [`SmolTransport`].
pub type Smol = HyperTestAdapter<SmolRuntime, SmolTransport>;
