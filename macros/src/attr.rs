//! Parses `#[refresh_endpoint(...)]` and the field attributes.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, LitStr, Path, Token, Type};

/// The keys the attribute accepts, in the order the docs list them.
pub const KEYS: &str = "path, method, auth, envelope, response, body, crate";

/// The attribute's arguments, each with the span of the token that set it.
#[derive(Default)]
pub struct Args {
    pub path: Option<LitStr>,
    pub method: Option<Ident>,
    pub auth: Option<Path>,
    pub envelope: Option<EnvelopeArg>,
    pub response: Option<Type>,
    pub body: Option<Ident>,
    pub krate: Option<Path>,
}

/// `envelope = name` or `envelope = name(success = N)`.
pub struct EnvelopeArg {
    pub path: Path,
    pub success: Option<LitInt>,
}

/// Parses the arguments, gathering every error rather than stopping at the first.
pub fn parse_args(args: TokenStream, errors: &mut Errors) -> Args {
    let mut out = Args::default();
    let parser = syn::meta::parser(|meta| {
        if let Err(error) = parse_key(&mut out, &meta) {
            errors.push(error);
            skip_value(meta.input)?;
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(args) {
        errors.push(error);
    }
    out
}

fn parse_key(out: &mut Args, meta: &ParseNestedMeta) -> syn::Result<()> {
    let key = &meta.path;
    if key.is_ident("path") {
        set(&mut out.path, meta.value()?.parse()?, key)
    } else if key.is_ident("method") {
        set(&mut out.method, meta.value()?.parse()?, key)
    } else if key.is_ident("auth") {
        set(&mut out.auth, meta.value()?.parse()?, key)
    } else if key.is_ident("envelope") {
        let value = meta.value()?;
        let path: Path = value.parse()?;
        let success = if value.peek(syn::token::Paren) {
            Some(parse_success(value)?)
        } else {
            None
        };
        set(&mut out.envelope, EnvelopeArg { path, success }, key)
    } else if key.is_ident("response") {
        set(&mut out.response, meta.value()?.parse()?, key)
    } else if key.is_ident("body") {
        set(&mut out.body, meta.value()?.parse()?, key)
    } else if key.is_ident("crate") {
        let value = meta.value()?;
        let path = if value.peek(LitStr) {
            value.parse::<LitStr>()?.parse()?
        } else {
            value.parse()?
        };
        set(&mut out.krate, path, key)
    } else {
        Err(syn::Error::new(
            key.span(),
            format!(
                "unknown key `{}`; the keys are: {KEYS}",
                quote::ToTokens::to_token_stream(key)
            ),
        ))
    }
}

/// `(success = N)` after `envelope = code_msg_data`.
fn parse_success(input: ParseStream) -> syn::Result<LitInt> {
    let content;
    syn::parenthesized!(content in input);
    let key: Ident = content.parse()?;
    if key != "success" {
        return Err(syn::Error::new(
            key.span(),
            format!("unknown envelope option `{key}`; write `code_msg_data(success = 0)`"),
        ));
    }
    content.parse::<Token![=]>()?;
    let value: LitInt = content.parse()?;
    value.base10_parse::<i64>()?;
    if !content.is_empty() {
        return Err(content.error("expected only `success = N`"));
    }
    Ok(value)
}

/// Sets a key once; the only place that reports a duplicate key.
fn set<T>(slot: &mut Option<T>, value: T, key: &Path) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!(
                "duplicate key `{}`; give each key once",
                quote::ToTokens::to_token_stream(key)
            ),
        ));
    }
    *slot = Some(value);
    Ok(())
}

/// Skips the rest of a key's value after an error, up to the next comma.
fn skip_value(input: ParseStream) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// The role a field attribute gives a field.
#[derive(Clone)]
pub enum RoleAttr {
    Path,
    Query(Option<LitStr>),
    Header(LitStr),
    RefreshToken,
    AccessToken,
}

impl RoleAttr {
    pub fn name(&self) -> &'static str {
        match self {
            RoleAttr::Path => "#[path]",
            RoleAttr::Query(_) => "#[query]",
            RoleAttr::Header(_) => "#[header]",
            RoleAttr::RefreshToken => "#[refresh_token]",
            RoleAttr::AccessToken => "#[access_token]",
        }
    }
}

/// Reads a field's role attribute, if `attr` is one of ours.
pub fn parse_role(attr: &Attribute) -> Option<syn::Result<RoleAttr>> {
    let path = attr.path();
    let word = |role: RoleAttr| match &attr.meta {
        syn::Meta::Path(_) => Ok(role),
        other => Err(syn::Error::new(
            other.span(),
            format!("`{}` takes no arguments", role.name()),
        )),
    };
    if path.is_ident("path") {
        Some(word(RoleAttr::Path))
    } else if path.is_ident("refresh_token") {
        Some(word(RoleAttr::RefreshToken))
    } else if path.is_ident("access_token") {
        Some(word(RoleAttr::AccessToken))
    } else if path.is_ident("query") {
        Some(match &attr.meta {
            syn::Meta::Path(_) => Ok(RoleAttr::Query(None)),
            _ => attr
                .parse_args::<LitStr>()
                .map(|name| RoleAttr::Query(Some(name)))
                .map_err(|e| syn::Error::new(e.span(), "write `#[query]` or `#[query(\"name\")]`")),
        })
    } else if path.is_ident("header") {
        Some(match &attr.meta {
            syn::Meta::List(_) => attr
                .parse_args::<LitStr>()
                .map(RoleAttr::Header)
                .map_err(|e| {
                    syn::Error::new(e.span(), "write the header's name: `#[header(\"X-Name\")]`")
                }),
            other => Err(syn::Error::new(
                other.span(),
                "write the header's name: `#[header(\"X-Name\")]`",
            )),
        })
    } else {
        None
    }
}

/// Every error found, reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub fn into_result(self) -> Result<(), syn::Error> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}
