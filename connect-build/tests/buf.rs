//! `buf generate` with the plugin, driven by the example configuration `examples/buf/buf.gen.yaml`,
//! writes the same files as connect-build's `build.rs` API for the same protos (which the examples
//! crate compiles): the plugin path cannot drift from the one every test uses.
//!
//! Needs the buf CLI: `$BUF`, else `interop/node_modules/.bin/buf` (which `interop/run.sh`
//! installs), else `buf` on `PATH`. Without it the test says so and passes; `examples/buf/check.sh`
//! runs it where buf is installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// The buf CLI to use, if there is one that runs.
fn buf() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("BUF")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from),
        Some(repo().join("interop/node_modules/.bin/buf")),
        Some(PathBuf::from("buf")),
    ];
    candidates.into_iter().flatten().find(|buf| {
        Command::new(buf)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Every file under `dir`, by name, with its contents.
fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("UTF-8 Rust"))
        })
        .collect()
}

/// `source` without the encoded `FileDescriptorProto`s embedded for reflection: buf's compiler and
/// protox encode the same file slightly differently (buf keeps an empty `options` on a method
/// declared with `{}`, protox drops it), so those bytes are compared as present, not as equal.
fn without_descriptors(source: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(start) = rest.find("const __FILE_DESCRIPTORS_") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("];")
            .expect("the end of the descriptors")
            + start;
        out.push_str("const __FILE_DESCRIPTORS_ ...");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn buf_generate_with_the_plugin_matches_connect_build() {
    let Some(buf) = buf() else {
        println!(
            "skipped: no buf CLI (set BUF, run interop/run.sh to install it into \
             interop/node_modules, or put buf on PATH)"
        );
        return;
    };
    let out = std::env::temp_dir().join(format!("connect-buf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let plugin = PathBuf::from(env!("CARGO_BIN_EXE_protoc-gen-connect-rust"));
    let path = std::env::join_paths(
        std::iter::once(plugin.parent().unwrap().to_path_buf()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )),
    )
    .unwrap();
    let status = Command::new(&buf)
        .current_dir(repo().join("examples/buf"))
        .args(["generate", "--output"])
        .arg(&out)
        .env("PATH", path)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", buf.display()));
    assert!(status.success(), "buf generate failed: {status}");
    let generated = files(&out.join("gen"));

    let examples = repo().join("examples");
    // buf hands the plugin its files in path order; the package's module file lists them in the
    // order they were given.
    let expected: BTreeMap<String, String> = connect_build::Config::new()
        .files(&[
            examples.join("proto/demo/v1/counter.proto"),
            examples.join("proto/demo/v1/greet.proto"),
        ])
        .includes(&[examples.join("proto")])
        .out_module("proto")
        .generate()
        .expect("connect-build generates")
        .into_iter()
        .map(|file| (file.name, file.content))
        .collect();

    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, content) in &expected {
        assert!(
            without_descriptors(&generated[name]) == without_descriptors(content),
            "{name} differs between buf generate and connect-build"
        );
    }
    // The services, clients and reflection descriptors are there, not only the messages.
    let greet = &generated["demo.v1.greet.__connect.rs"];
    assert!(greet.contains("pub trait GreetService") && greet.contains("DESCRIPTORS"));
    let _ = std::fs::remove_dir_all(&out);
    println!("buf generate ({}) matches connect-build", buf.display());
}
