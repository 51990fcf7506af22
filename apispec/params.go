package apispec

import (
	"net/http"
	"net/url"

	"github.com/getkin/kin-openapi/openapi3"
)

// A parameter that holds one value, stated more than once, is checked on one
// copy: kin-openapi reads the first (of a query key, the first that is not empty;
// of a header, the first line), while backends read the last (PHP, Rack), join
// them ("10,500": ASP.NET) or take a list (Express). So a parameter stated more
// than once is a violation unless the spec makes it an array of those statements.
// A comma within one header line is part of the value, which the schema checks.

// statedTwice is the message for a parameter stated more than once.
const statedTwice = "stated more than once: send it once"

// onceParam is a query key or a header (canonical) that may be stated once, and
// where a violation of that is (a parameter's name, or name/member for a member
// of an exploded form object).
type onceParam struct {
	key, at string
}

// notRepeatable lists the query keys and headers of an operation's parameters
// (the path item's, less those the operation overrides, and the operation's) that
// may be stated once.
func notRepeatable(item *openapi3.PathItem, op *openapi3.Operation) (query, header []onceParam) {
	var params []*openapi3.Parameter
	for _, ref := range item.Parameters {
		if ref == nil || ref.Value == nil || op.Parameters.GetByInAndName(ref.Value.In, ref.Value.Name) != nil {
			continue
		}
		params = append(params, ref.Value)
	}
	for _, ref := range op.Parameters {
		if ref != nil && ref.Value != nil {
			params = append(params, ref.Value)
		}
	}
	queryNames := make(map[string]bool)
	for _, p := range params {
		if p.In == openapi3.ParameterInQuery {
			queryNames[p.Name] = true
		}
	}
	for _, p := range params {
		sm, err := p.SerializationMethod()
		if err != nil {
			continue
		}
		var schema *openapi3.Schema
		if p.Schema != nil {
			schema = p.Schema.Value
		}
		switch p.In {
		case openapi3.ParameterInQuery:
			switch {
			case schema != nil && sm.Style == openapi3.SerializationDeepObject:
				// name[member]=…: kin-openapi joins the statements of a key and
				// checks them all.
			case schema != nil && schema.Type.Is(openapi3.TypeObject) && sm.Style == openapi3.SerializationForm && sm.Explode:
				// Each member is a key of its own (?role=admin&name=Alex), read
				// as its first statement.
				for member := range schema.Properties {
					if !queryNames[member] {
						query = append(query, onceParam{key: member, at: pointer(p.Name, []string{member})})
					}
				}
			case schema != nil && sm.Explode && isArray(schema, 0):
				// ?id=1&id=2, however the style would join them unexploded.
			default:
				query = append(query, onceParam{key: p.Name, at: p.Name})
			}
		case openapi3.ParameterInHeader:
			// OpenAPI has these three taken from elsewhere, and ignores them.
			key := http.CanonicalHeaderKey(p.Name)
			if key == "Accept" || key == "Content-Type" || key == "Authorization" {
				continue
			}
			// kin-openapi joins the lines of an array as RFC 9110 has it.
			if schema == nil || !isArray(schema, 0) {
				header = append(header, onceParam{key: key, at: key})
			}
		}
	}
	return query, header
}

// isArray reports whether a parameter's schema makes it an array: its type
// includes array, or, when it names no type, one of the schemas it combines does.
func isArray(s *openapi3.Schema, depth int) bool {
	if s.Type.Includes(openapi3.TypeArray) {
		return true
	}
	if !s.Type.IsEmpty() || depth > 8 {
		return false
	}
	for _, refs := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range refs {
			if r != nil && r.Value != nil && isArray(r.Value, depth+1) {
				return true
			}
		}
	}
	return false
}

// statedMoreThanOnce appends a violation for each query key and header of o that
// the request states more than once. query is the request's query as kin-openapi
// parsed it.
func (o *Operation) statedMoreThanOnce(vs []Violation, query url.Values, header http.Header) []Violation {
	for _, p := range o.onceQuery {
		if len(query[p.key]) > 1 {
			vs = append(vs, Violation{In: InQuery, At: p.at, Message: statedTwice})
		}
	}
	for _, p := range o.onceHeader {
		if len(header[p.key]) > 1 {
			vs = append(vs, Violation{In: InHeader, At: p.at, Message: statedTwice})
		}
	}
	return vs
}
