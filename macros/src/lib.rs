//! The `#[refresh_endpoint(...)]` attribute. Depend on the `refresh-endpoint`
//! crate, which re-exports it and holds everything the generated code calls.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Declares a refresh endpoint on a plain struct.
///
#[doc = include_str!("../ATTRIBUTE.md")]
#[proc_macro_attribute]
pub fn refresh_endpoint(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::expand(args.into(), input.into()).into()
}
