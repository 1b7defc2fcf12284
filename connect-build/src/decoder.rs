//! Request decoders for batch-shaped messages: buffa's view decode with the capacities of repeated
//! fields allocated up front (see `connect_typed::codegen` for what and why).
//!
//! A decoder is generated for a method's input message when the message has repeated string, bytes,
//! message or map fields. Its own such fields get their counted sizes; the elements of its repeated
//! message fields get their repeated fields sized from the element before. The generated code names
//! view fields, so it is only generated where the field names are certain: messages of the files
//! being generated (same code generator settings), not editions files (whose delimited encoding the
//! decoder does not model), and only when every field and oneof name is already lower snake case
//! (buffa keeps such names as they are, whatever its naming options).

use std::collections::HashMap;

use buffa_codegen::generated::descriptor::field_descriptor_proto::{Label, Type};
use buffa_codegen::generated::descriptor::{DescriptorProto, FileDescriptorProto};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

/// Messages by fully qualified name (`.pkg.Outer.Inner`), and whether the decoder may name their
/// fields.
pub(crate) struct MessageIndex<'a> {
    messages: HashMap<String, (&'a DescriptorProto, bool)>,
}

impl<'a> MessageIndex<'a> {
    pub(crate) fn new(
        descriptors: &'a [FileDescriptorProto],
        files_to_generate: &[String],
    ) -> Self {
        let mut messages = HashMap::new();
        for file in descriptors {
            let generated = file
                .name
                .as_ref()
                .is_some_and(|n| files_to_generate.contains(n))
                && file.syntax.as_deref() != Some("editions");
            let prefix = match file.package.as_deref() {
                Some(p) if !p.is_empty() => format!(".{p}"),
                _ => String::new(),
            };
            for message in &file.message_type {
                index(&mut messages, &prefix, message, generated);
            }
        }
        MessageIndex { messages }
    }

    fn get(&self, name: &str) -> Option<&'a DescriptorProto> {
        self.messages.get(name).map(|(m, _)| *m)
    }

    /// The message, if the decoder may name its fields.
    fn nameable(&self, name: &str) -> Option<&'a DescriptorProto> {
        match self.messages.get(name) {
            Some((m, true)) if plain_names(m) => Some(*m),
            _ => None,
        }
    }

    fn is_map_entry(&self, name: &str) -> bool {
        self.get(name)
            .and_then(|m| m.options.as_option())
            .and_then(|o| o.map_entry)
            .unwrap_or(false)
    }

    /// The repeated fields of `message` worth sizing ahead: strings, bytes, messages and maps.
    fn sized_fields(&self, message: &DescriptorProto) -> Vec<SizedField> {
        if message
            .options
            .as_option()
            .and_then(|o| o.message_set_wire_format)
            .unwrap_or(false)
        {
            return Vec::new();
        }
        message
            .field
            .iter()
            .filter(|f| f.label == Some(Label::LABEL_REPEATED))
            .filter_map(|f| {
                let name = f.name.as_deref()?;
                let number = u32::try_from(f.number?).ok()?;
                let type_name = f.type_name.clone().unwrap_or_default();
                let kind = match f.r#type? {
                    Type::TYPE_STRING | Type::TYPE_BYTES => Kind::List,
                    Type::TYPE_MESSAGE if self.is_map_entry(&type_name) => Kind::Map,
                    Type::TYPE_MESSAGE => Kind::Messages(type_name),
                    _ => return None,
                };
                Some(SizedField {
                    ident: buffa_codegen::idents::make_field_ident(name),
                    number,
                    kind,
                })
            })
            .collect()
    }
}

fn index<'a>(
    out: &mut HashMap<String, (&'a DescriptorProto, bool)>,
    prefix: &str,
    message: &'a DescriptorProto,
    generated: bool,
) {
    let name = format!("{prefix}.{}", message.name.as_deref().unwrap_or(""));
    for nested in &message.nested_type {
        index(out, &name, nested, generated);
    }
    out.insert(name, (message, generated));
}

/// Every field and oneof name is lower snake case, so buffa names the view's fields after them
/// unchanged.
fn plain_names(message: &DescriptorProto) -> bool {
    let lower = |name: &str, leading_underscore: bool| {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || (leading_underscore && c == '_'))
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    message
        .field
        .iter()
        .all(|f| f.name.as_deref().is_some_and(|n| lower(n, false)))
        // proto3 `optional` fields sit in synthetic oneofs named `_field`
        && message
            .oneof_decl
            .iter()
            .all(|o| o.name.as_deref().is_some_and(|n| lower(n, true)))
}

enum Kind {
    /// `RepeatedView` of strings or bytes.
    List,
    /// `MapView`.
    Map,
    /// `RepeatedView` of messages of this type.
    Messages(String),
}

struct SizedField {
    ident: Ident,
    number: u32,
    kind: Kind,
}

impl SizedField {
    fn container(&self) -> TokenStream {
        match self.kind {
            Kind::Map => quote! { ::buffa::view::MapView },
            Kind::List | Kind::Messages(_) => quote! { ::buffa::view::RepeatedView },
        }
    }
}

/// The decoder (a unit struct implementing `ViewDecoder`, named `name`) for messages of type `input`,
/// whose Rust path is `input_ty`; `None` when buffa's own decoder is all there is to it. `rust_type`
/// resolves a message name to its Rust path.
pub(crate) fn generate(
    index: &MessageIndex<'_>,
    rt: &syn::Path,
    name: &Ident,
    input: &str,
    input_ty: &TokenStream,
    rust_type: impl Fn(&str) -> Option<TokenStream>,
) -> Option<TokenStream> {
    let message = index.nameable(input)?;
    let fields = index.sized_fields(message);
    if fields.is_empty() {
        return None;
    }
    let view_of = |ty: &TokenStream| quote! { <#ty as ::buffa::view::HasMessageView>::View<'a> };
    let counts: Vec<Ident> = (0..fields.len()).map(|i| format_ident!("n{}", i)).collect();
    let numbers = fields.iter().map(|f| f.number);

    // Fields only sized ahead (`presize`), and repeated message fields whose elements are decoded
    // here, their lists sized from the element before (`locals`, `arms`, `finish`).
    let mut presize = Vec::new();
    let mut locals = Vec::new();
    let mut arms = Vec::new();
    let mut finish = Vec::new();
    for (field, count) in fields.iter().zip(&counts) {
        let ident = &field.ident;
        let container = field.container();
        let element = match &field.kind {
            Kind::Messages(type_name) => index
                .nameable(type_name)
                .map(|m| index.sized_fields(m))
                .filter(|inner| !inner.is_empty())
                .and_then(|inner| Some((rust_type(type_name)?, inner))),
            _ => None,
        };
        let Some((element_ty, inner)) = element else {
            presize.push(quote! { view.#ident = #container::new(budget.vec(#count)); });
            continue;
        };
        let list = format_ident!("f{}", field.number);
        let hints = format_ident!("h{}", field.number);
        let number = field.number;
        let slots = inner.len();
        let element_view = view_of(&element_ty);
        let sized = inner.iter().enumerate().map(|(i, f)| {
            let (ident, container) = (&f.ident, f.container());
            quote! { e.#ident = #container::new(budget.vec(__d::hint(#hints[#i], sub.len()))); }
        });
        let lens = inner.iter().map(|f| {
            let ident = &f.ident;
            quote! { e.#ident.len() }
        });
        locals.push(quote! {
            let mut #list = budget.vec(#count);
            let mut #hints = [0usize; #slots];
        });
        arms.push(quote! {
            #number if tag.wire_type() == ::buffa::encoding::WireType::LengthDelimited => {
                #list.push(__d::element(&mut cur, ctx, |sub, ctx| {
                    let mut e: #element_view = ::core::default::Default::default();
                    #(#sized)*
                    e.merge_into_view(sub, ctx)?;
                    #hints = [#(#lens),*];
                    ::core::result::Result::Ok(e)
                })?);
                cur
            }
        });
        finish.push(quote! { view.#ident = #container::new(#list); });
    }

    let body = if arms.is_empty() {
        quote! {
            view.merge_into_view(buf, ctx)?;
        }
    } else {
        quote! {
            #(#locals)*
            let mut cur = buf;
            while !cur.is_empty() {
                let before_tag = cur;
                let tag = ::buffa::encoding::Tag::decode(&mut cur)?;
                cur = match tag.field_number() {
                    #(#arms)*
                    _ => view.merge_view_field(tag, cur, before_tag, ctx)?,
                };
            }
            #(#finish)*
        }
    };
    let input_view = view_of(input_ty);
    let doc = format!(
        " Decodes `{}` request views with the capacities of repeated fields allocated up front.",
        input.trim_start_matches('.')
    );
    Some(quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        struct #name;

        impl #rt::ViewDecoder<#input_ty> for #name {
            // A view type is named through `HasMessageView` here, which a struct literal cannot use.
            #[allow(clippy::field_reassign_with_default)]
            fn decode_view<'a>(&self, buf: &'a [u8]) -> ::core::result::Result<#input_view, ::buffa::DecodeError> {
                use ::buffa::view::MessageView as _;
                use #rt::codegen as __d;
                let budget = __d::Budget::new();
                let ctx = budget.context();
                let [#(#counts),*] = __d::count_fields(buf, [#(#numbers),*]);
                let mut view: #input_view = ::core::default::Default::default();
                #(#presize)*
                #body
                ::core::result::Result::Ok(view)
            }
        }
    })
}
