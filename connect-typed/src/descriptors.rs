//! The schema of a generated service, for server reflection.

/// A service's full name and the `.proto` files that describe it, each an encoded
/// `google.protobuf.FileDescriptorProto` (without source info): the file that declares the service
/// first, then every file it imports, transitively (well-known types included), each once.
///
/// connect-build generates one per service, as `<service>_methods::DESCRIPTORS`; a reflection
/// service (the `connect-reflection` crate) serves them, so clients such as `buf curl` and `grpcurl`
/// can find the service's methods and messages with no local `.proto` files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceDescriptors {
    /// The service's fully qualified name (`acme.greet.v1.GreetService`).
    pub service: &'static str,
    /// Encoded `FileDescriptorProto`s: the service's file, then its imports.
    pub files: &'static [&'static [u8]],
}
