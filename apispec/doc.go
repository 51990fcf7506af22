// Package apispec holds requests and answers to an interface spec: the OpenAPI
// documents both sides of an integration agreed on (DESIGN.md, "The interface spec at
// the edge"). It loads and checks the documents once, finds the operation a request
// is for, and says every way a request or an answer departs from that operation, as
// Violations a caller can act on: where ({in, at}) and what (message).
//
// It stands on kin-openapi (github.com/getkin/kin-openapi): its loader and document
// validation, its parameter decoding (styles, explode, deepObject) and its built-in
// schema validator. Three things are signgate's own:
//
//   - Routing. Operations are matched on the gateway's decided method and path,
//     literal segments before templated ones, under every path prefix the
//     document's servers name, without a router dependency; the same templates
//     answer which gateway route patterns the documents cover at all.
//   - JSON bodies. They are decoded strictly, once: a member named twice (in
//     any letter case, as case-insensitive parsers match names) or anything
//     after the value is a violation, since an upstream that reads the other
//     copy (or the second value) would act on what was never checked. So is a
//     query or header parameter stated more than once that the spec does not
//     make an array of its statements: kin-openapi checks one of them.
//   - Messages. kin-openapi's errors become {in, at, message}: at is a JSON
//     Pointer into the body ("/phone"; "/extra" for a member additionalProperties
//     refuses, "" for the whole body) or a parameter's name ("id"), and the message
//     is the schema error's reason, never a dump of the schema or the value.
//
// OpenAPI 3.1 documents are validated with the same built-in validator, which knows
// 3.1's type lists (type: [string, "null"]), numeric exclusiveMinimum and
// exclusiveMaximum and boolean schemas. The JSON Schema 2020-12 keywords only
// kin-openapi's 2020-12 mode enforces (const, prefixItems, contains, if/then/else,
// patternProperties, dependentRequired, dependentSchemas, propertyNames,
// unevaluatedItems, unevaluatedProperties, $defs, $dynamicRef, contentSchema) are
// refused when the document loads: that mode compiles the schema again on every
// call, and a gateway that silently skipped a keyword would let through what the
// spec forbids.
//
// A Spec is immutable once loaded, and safe for concurrent use.
package apispec
