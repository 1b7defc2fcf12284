//! The message types that JSON `google.protobuf.Any` values can hold.
//!
//! Proto3 JSON writes an `Any` as `{"@type": "type.googleapis.com/pkg.Msg", ...the message's own
//! fields}` (well-known types with a JSON form of their own put it under `"value"`). Writing or
//! reading that form needs the embedded type's JSON mapping, looked up by its type URL in buffa's
//! process-wide type registry; a type missing there is written as `{"@type", "value": <base64>}`,
//! which other implementations refuse, and read without its fields.
//!
//! Generated servers and clients register their own package, the packages their `.proto` file
//! imports (when generated in the same run) and the well-known types when they are constructed,
//! so a service's JSON works without a line of setup. Types that reach an `Any` from elsewhere (a
//! package compiled in another crate, error details of your own) are registered with
//! [`register_json_types`] and the package's generated `register_types` function:
//!
//! ```ignore
//! connect_typed::register_json_types(my_crate::proto::acme::errors::v1::register_types);
//! ```

use std::sync::Mutex;

use buffa::type_registry::TypeRegistry;

/// A function that adds message types to a registry: buffa generates one per package
/// (`register_types`), connect-build one per service (`<service>_methods::register_types`).
pub type RegisterTypes = fn(&mut TypeRegistry);

/// The functions registered so far, in order.
static REGISTERED: Mutex<Vec<RegisterTypes>> = Mutex::new(Vec::new());

/// Makes the types that `register` adds known to JSON `Any` in this process, next to the
/// well-known types, the `google.rpc` detail types and everything registered before. Registering the same function again does
/// nothing, so it is cheap to call from constructors.
///
/// This installs buffa's global type registry: a registry installed directly with
/// `buffa::type_registry::set_type_registry` is replaced at the next new registration here, so
/// register everything through this function.
pub fn register_json_types(register: RegisterTypes) {
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    // By address: comparing function pointers with `==` is not reliable across codegen units,
    // and a duplicate that slips through only rebuilds the registry once more.
    if registered.iter().any(|r| *r as usize == register as usize) {
        return;
    }
    registered.push(register);
    let mut registry = TypeRegistry::new();
    buffa_types::register_wkt_types(&mut registry);
    crate::google::rpc::register_types(&mut registry);
    for register in registered.iter() {
        register(&mut registry);
    }
    // buffa keeps each installed registry for the life of the process; one is built per new
    // registration, a handful per program.
    buffa::type_registry::set_type_registry(registry);
}

#[cfg(test)]
mod tests {
    use super::*;
    use buffa_types::google::protobuf::{Any, Duration};

    fn nothing_more(_: &mut TypeRegistry) {}

    #[test]
    fn registering_installs_the_well_known_types_once() {
        register_json_types(nothing_more);
        register_json_types(nothing_more);
        let count = REGISTERED
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r as usize == nothing_more as RegisterTypes as usize)
            .count();
        assert_eq!(count, 1);
        // A well-known type with a JSON form of its own goes under "value".
        let duration = Duration {
            seconds: 3,
            ..Default::default()
        };
        let any = Any {
            type_url: "type.googleapis.com/google.protobuf.Duration".into(),
            value: buffa::Message::encode_to_vec(&duration).into(),
            ..Default::default()
        };
        let json = serde_json::to_value(&any).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"})
        );
        let back: Any = serde_json::from_value(json).unwrap();
        assert_eq!(back.value, any.value);
    }
}
