//! A small borrowed model of the struct: its fields and their roles.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Attribute, Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::attr::{Errors, RoleAttr, parse_role};

pub struct Input<'a> {
    pub item: &'a DeriveInput,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub role: Role,
    /// The role attribute; `None` for body fields.
    pub role_attr: Option<&'a Attribute>,
    /// The span of `flatten` in `#[serde(flatten)]`, if any.
    pub flatten: Option<Span>,
}

#[derive(Clone)]
pub enum Role {
    Body,
    Path,
    Query(String),
    /// `None` when the name is missing (an error already).
    Header(Option<LitStr>),
    RefreshToken,
    AccessToken,
}

impl Role {
    /// Whether the field is serialized into the body.
    pub fn in_body(&self) -> bool {
        matches!(self, Role::Body | Role::RefreshToken | Role::AccessToken)
    }
}

impl<'a> Input<'a> {
    pub fn from_syn(item: &'a DeriveInput, errors: &mut Errors) -> Input<'a> {
        let fields = match &item.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => named
                    .named
                    .iter()
                    .filter_map(|f| Field::from_syn(f, errors))
                    .collect(),
                Fields::Unit => Vec::new(),
                Fields::Unnamed(unnamed) => {
                    errors.at(
                        unnamed.span(),
                        "#[refresh_endpoint] needs named fields or a unit struct; write `struct Name { field: Type }`",
                    );
                    Vec::new()
                }
            },
            Data::Enum(data) => {
                errors.at(
                    data.enum_token.span,
                    "#[refresh_endpoint] goes on a struct, not an enum; write `struct Name { ... }` or `struct Name;`",
                );
                Vec::new()
            }
            Data::Union(data) => {
                errors.at(
                    data.union_token.span,
                    "#[refresh_endpoint] goes on a struct, not a union; write `struct Name { ... }` or `struct Name;`",
                );
                Vec::new()
            }
        };
        Input { item, fields }
    }
}

impl<'a> Field<'a> {
    /// Where an error about the field's role goes: its role attribute, or its
    /// name for a body field.
    pub fn role_site(&self) -> TokenStream {
        match self.role_attr {
            Some(attr) => attr.to_token_stream(),
            None => self.ident.to_token_stream(),
        }
    }

    fn from_syn(field: &'a syn::Field, errors: &mut Errors) -> Option<Field<'a>> {
        let ident = field.ident.as_ref()?;
        let mut role: Option<(RoleAttr, &Attribute)> = None;
        for attr in &field.attrs {
            let parsed = parse_role(attr).or_else(|| {
                // A misspelt role: reported, and taken as the role it is
                // closest to, so that the field is not also reported as
                // missing that role.
                let (name, role) = misspelt_role(attr)?;
                errors.spanned(
                    attr.path(),
                    format!(
                        "unknown field attribute `#[{name}]` (did you mean `#[{}]`?); the field attributes are #[path], #[query], #[header(\"Name\")], #[refresh_token], #[access_token]",
                        role.name().trim_start_matches("#[").trim_end_matches(']')
                    ),
                );
                Some((role, None))
            });
            let Some((new, error)) = parsed else {
                continue;
            };
            if let Some(error) = error {
                errors.push(error);
            }
            match &role {
                Some((first, _)) => errors.spanned(
                    attr,
                    format!(
                        "field `{ident}` already has the role {}; a field has one role: remove {} or move it to another field",
                        first.name(),
                        new.name()
                    ),
                ),
                None => role = Some((new, attr)),
            }
        }
        let (role, role_attr) = match role {
            None => (Role::Body, None),
            Some((attr, site)) => {
                let role = match attr {
                    RoleAttr::Path => Role::Path,
                    RoleAttr::Query(name) => {
                        Role::Query(name.map_or_else(|| unraw(ident), |lit| lit.value()))
                    }
                    RoleAttr::Header(name) => Role::Header(name),
                    RoleAttr::RefreshToken => Role::RefreshToken,
                    RoleAttr::AccessToken => Role::AccessToken,
                };
                (role, Some(site))
            }
        };
        Some(Field {
            ident,
            ty: &field.ty,
            role,
            role_attr,
            flatten: field.attrs.iter().find_map(serde_flatten),
        })
    }
}

/// The field's name without `r#`.
pub fn unraw(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_owned).unwrap_or(name)
}

/// The span of `flatten` in `#[serde(flatten)]`.
fn serde_flatten(attr: &Attribute) -> Option<Span> {
    if !attr.path().is_ident("serde") {
        return None;
    }
    let syn::Meta::List(list) = &attr.meta else {
        return None;
    };
    list.tokens
        .clone()
        .into_iter()
        .find_map(|token| match token {
            TokenTree::Ident(ident) if ident == "flatten" => Some(ident.span()),
            _ => None,
        })
}

/// The field attributes' names.
const ROLES: [&str; 5] = ["path", "query", "header", "refresh_token", "access_token"];

/// An attribute a small edit away from one of ours: its name and the role
/// it is closest to.
fn misspelt_role(attr: &Attribute) -> Option<(String, RoleAttr)> {
    let name = attr.path().get_ident()?.to_string();
    if ROLES.contains(&name.as_str()) {
        return None;
    }
    let role = match crate::attr::closest(&name, &ROLES)? {
        "path" => RoleAttr::Path,
        "query" => RoleAttr::Query(None),
        "header" => RoleAttr::Header(None),
        "refresh_token" => RoleAttr::RefreshToken,
        _ => RoleAttr::AccessToken,
    };
    Some((name, role))
}

/// Whether an attribute is one of ours, or a misspelling of one reported
/// already (removed from the struct we emit).
pub fn is_role_attr(attr: &Attribute) -> bool {
    parse_role(attr).is_some() || misspelt_role(attr).is_some()
}
