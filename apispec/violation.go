package apispec

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// Violation is one way a request or an answer departs from its operation: where
// (In, At) and what (Message). ValidateRequest and ValidateResponse return them
// sorted by part (status, path, query, header, body), then by At.
type Violation struct {
	// In is the part at fault: path, query, header or body in a request; status,
	// header or body in an answer.
	In string `json:"in"`
	// At locates the value within that part: a JSON Pointer into a body ("/phone",
	// "/items/0/name", "" for the body as a whole), the name of a parameter or
	// header ("id", "Content-Type"), followed by a pointer into its value when the
	// value is structured ("ids/2").
	At string `json:"at"`
	// Message says what is wrong and, where the spec says it, what is wanted. It is
	// the schema's reason, never a dump of the value; values the caller sent can
	// still appear in it (a parameter that is not a number), so the gateway masks
	// it before it is shown or logged.
	Message string `json:"message"`
}

// Where a violation is.
const (
	InPath   = "path"
	InQuery  = "query"
	InHeader = "header"
	InBody   = "body"
	InStatus = "status"
)

// pointer appends the JSON Pointer tokens to base, escaped as RFC 6901 has it.
func pointer(base string, tokens []string) string {
	if len(tokens) == 0 {
		return base
	}
	var b strings.Builder
	b.WriteString(base)
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// unsupportedMember finds the member name in the reason kin-openapi gives for a
// member that additionalProperties: false refuses.
var unsupportedMember = regexp.MustCompile(`^property "(.*)" is unsupported$`)

// collect turns the errors of kin-openapi's validators into violations. in and at
// are where the values err is about sit (the body's root, a parameter). The
// wrappers are taken apart by type, not with errors.As, which would reach through
// a wrapper that says where a value is and lose that.
func collect(out []Violation, err error, in, at string) []Violation {
	switch e := err.(type) {
	case nil:
		return out
	case openapi3.MultiError:
		for _, x := range e {
			out = collect(out, x, in, at)
		}
		return out
	case *openapi3filter.RequestError:
		switch {
		case e.Parameter != nil:
			in, at = parameterPlace(e.Parameter)
		case e.RequestBody != nil:
			in = InBody
		}
		switch {
		case errors.Is(e.Err, openapi3filter.ErrInvalidRequired):
			return append(out, Violation{In: in, At: at, Message: "required, and missing"})
		case errors.Is(e.Err, openapi3filter.ErrInvalidEmptyValue):
			return append(out, Violation{In: in, At: at, Message: "may not be empty"})
		case e.Err != nil:
			return collect(out, e.Err, in, at)
		}
		return append(out, Violation{In: in, At: at, Message: e.Reason})
	case *openapi3.SchemaError:
		where := pointer(at, e.JSONPointer())
		if m := unsupportedMember.FindStringSubmatch(e.Reason); m != nil && e.SchemaField == "properties" {
			return append(out, Violation{In: in, At: pointer(where, []string{m[1]}),
				Message: "not a member the spec allows here (additionalProperties: false)"})
		}
		return append(out, Violation{In: in, At: where, Message: schemaMessage(e)})
	}
	var pe *openapi3filter.ParseError
	if errors.As(err, &pe) {
		var path []string
		for _, p := range pe.Path() {
			path = append(path, fmt.Sprint(p))
		}
		return append(out, Violation{In: in, At: pointer(at, path), Message: parseMessage(pe)})
	}
	return append(out, Violation{In: in, At: at, Message: err.Error()})
}

// parameterPlace is where a parameter is: path, query or header, at its name. A
// cookie is a header's value, at "Cookie/name".
func parameterPlace(p *openapi3.Parameter) (in, at string) {
	switch p.In {
	case openapi3.ParameterInPath:
		return InPath, p.Name
	case openapi3.ParameterInQuery:
		return InQuery, p.Name
	case openapi3.ParameterInCookie:
		return InHeader, "Cookie/" + p.Name
	}
	return InHeader, http.CanonicalHeaderKey(p.Name)
}

// formatHints say what a value of a format looks like, for the formats
// kin-openapi checks without being told.
var formatHints = map[string]string{
	"date-time": "RFC 3339 with a time zone, such as 2026-11-23T10:00:00+08:00",
	"date":      "RFC 3339 full-date, such as 2026-11-23",
	"byte":      "base64",
	"int32":     "a 32-bit integer",
	"int64":     "a 64-bit integer",
}

// schemaMessage is the message of a schema error: its reason, which kin-openapi
// keeps free of the value, with a format's regular expression swapped for what a
// person can act on.
func schemaMessage(se *openapi3.SchemaError) string {
	if se.SchemaField == "format" && se.Schema != nil {
		f := se.Schema.Format
		if hint, ok := formatHints[f]; ok {
			return fmt.Sprintf("not a %s: want %s", f, hint)
		}
		return fmt.Sprintf("does not match the format %q", f)
	}
	if se.Reason != "" {
		return se.Reason
	}
	return fmt.Sprintf("does not match the schema's %q", se.SchemaField)
}

// parseMessage is why a parameter or body could not be read as its schema says,
// without the value ParseError.Error puts first.
func parseMessage(pe *openapi3filter.ParseError) string {
	var reasons []string
	for e := error(pe); e != nil; {
		p, ok := e.(*openapi3filter.ParseError)
		if !ok {
			if msg := e.Error(); msg != "" && !strings.HasPrefix(msg, "strconv.") {
				reasons = append(reasons, msg)
			}
			break
		}
		if p.Reason != "" {
			reasons = append(reasons, p.Reason)
		}
		e = p.Cause
	}
	if len(reasons) == 0 {
		return "cannot be read as the spec says"
	}
	return "value is " + strings.Join(reasons, ": ")
}
