//! OpenAPI schemas of the types that serialise as strings of their own (times, names), for
//! the manager's `/openapi.json`. The derived schemas of the JSON types refer to these.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};

/// A string schema with a description, and a format or a pattern.
pub fn string(
    description: &str,
    format: Option<KnownFormat>,
    pattern: Option<&str>,
) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .description(Some(description))
        .format(format.map(SchemaFormat::KnownFormat))
        .pattern(pattern)
        .into()
}

/// Implements `ToSchema` for a type that serialises as a string.
macro_rules! string_schema {
    ($type:ty, $description:expr, $format:expr, $pattern:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::openapi::string($description, $format, $pattern)
            }
        }

        impl utoipa::ToSchema for $type {}
    };
}

pub(crate) use string_schema;
