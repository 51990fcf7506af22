package apispec

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// Why a body went unchecked (see ValidateRequest and ValidateResponse).
const (
	// UncheckedMediaType: the spec describes the body in a media type that is not
	// JSON and that kin-openapi has no decoder for (an answer's non-JSON body, a
	// request's application/xml).
	UncheckedMediaType = "media_type"
)

// Both directions run kin-openapi's validators as a checker, never as a rewriter:
// no defaults are written into the request (the upstream gets what the caller sent,
// which a signature may cover), security requirements are the gateway's own
// business (authentication ran before), and the messages are built from the
// errors' parts, not from a dump of the schema and the value.
var (
	schemaOptions = []openapi3.SchemaValidationOption{openapi3.DisableSchemaErrorDetails()}

	requestOptions = &openapi3filter.Options{
		ExcludeRequestBody:      true, // decoded strictly here (decodeJSON)
		MultiError:              true,
		SkipSettingDefaults:     true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: schemaOptions,
	}
	bodyOptions = &openapi3filter.Options{
		MultiError:              true,
		SkipSettingDefaults:     true,
		AuthenticationFunc:      openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: schemaOptions,
	}
	responseOptions = &openapi3filter.Options{
		ExcludeResponseBody:     true, // decoded strictly here
		IncludeResponseStatus:   true, // a status the operation does not list is drift too
		MultiError:              true,
		SchemaValidationOptions: schemaOptions,
	}
)

// ValidateRequest checks a request for o: its path parameters (params, as Find
// returned them), query, headers, cookies and body (the whole body, which the
// caller has read). It returns every violation, and, when the body could not be
// checked at all, why (UncheckedMediaType).
func (o *Operation) ValidateRequest(ctx context.Context, r *http.Request, params map[string]string, body []byte) ([]Violation, string) {
	// kin-openapi reads the URL, headers and cookies; the request it is given
	// shares them with r and has no body, so nothing of r is consumed or changed.
	in := &openapi3filter.RequestValidationInput{
		Request:    &http.Request{Method: o.Method, URL: r.URL, Header: r.Header, Host: r.Host, Body: http.NoBody},
		PathParams: params,
		Route:      o.route,
		Options:    requestOptions,
	}
	vs := collect(nil, openapi3filter.ValidateRequest(ctx, in), "", "")
	if len(o.onceQuery) > 0 || len(o.onceHeader) > 0 {
		vs = o.statedMoreThanOnce(vs, in.GetQueryParams(), r.Header)
	}
	bvs, unchecked := o.validateRequestBody(ctx, in.Request, body)
	return inOrder(append(vs, bvs...)), unchecked
}

// places ranks the parts of a request and an answer as a reader meets them.
var places = map[string]int{InStatus: 0, InPath: 1, InQuery: 2, InHeader: 3, InBody: 4}

// inOrder sorts violations by part, then by where in it, so the same request is
// always answered with the same list.
func inOrder(vs []Violation) []Violation {
	slices.SortStableFunc(vs, func(a, b Violation) int {
		if d := places[a.In] - places[b.In]; d != 0 {
			return d
		}
		return strings.Compare(a.At, b.At)
	})
	return vs
}

func (o *Operation) validateRequestBody(ctx context.Context, r *http.Request, body []byte) ([]Violation, string) {
	ref := o.op.RequestBody
	if ref == nil || ref.Value == nil {
		if len(body) > 0 {
			return []Violation{{In: InBody, Message: "this operation takes no body"}}, ""
		}
		return nil, ""
	}
	rb := ref.Value
	if len(body) == 0 {
		if rb.Required {
			return []Violation{{In: InBody, Message: "a body is required"}}, ""
		}
		return nil, ""
	}
	if len(rb.Content) == 0 {
		return nil, ""
	}
	// Body parsers inflate a compressed request body; the check would read other
	// bytes than they do.
	if ce := r.Header.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return []Violation{{In: InHeader, At: "Content-Encoding", Message: "a compressed body cannot be checked against the interface spec: send it uncompressed"}}, ""
	}
	mt, ctype, v := mediaTypeFor(rb.Content, r.Header)
	if v != nil {
		return []Violation{*v}, ""
	}
	if mt.Schema == nil || mt.Schema.Value == nil {
		return nil, ""
	}
	if isJSON(ctype) {
		value, err := decodeJSON(body)
		if err != nil {
			je := err.(*jsonError)
			return []Violation{{In: InBody, At: je.at(), Message: je.msg}}, ""
		}
		err = mt.Schema.Value.VisitJSON(value, append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsRequest()}, schemaOptions...)...)
		return collect(nil, err, InBody, ""), ""
	}
	// Forms, text: kin-openapi's decoders, on a request of its own.
	br := r.Clone(ctx)
	br.Body = io.NopCloser(bytes.NewReader(body))
	br.ContentLength = int64(len(body))
	in := &openapi3filter.RequestValidationInput{Request: br, Route: o.route, Options: bodyOptions}
	err := openapi3filter.ValidateRequestBody(ctx, in, rb)
	if isUnsupported(err) {
		return nil, UncheckedMediaType
	}
	return collect(nil, err, InBody, ""), ""
}

// ValidateResponse checks an upstream's answer to a request for o: its status,
// headers and body (the whole body, decoded of any Content-Encoding). It returns
// every violation, and, when the body could not be checked, why.
func (o *Operation) ValidateResponse(ctx context.Context, r *http.Request, params map[string]string, status int, header http.Header, body []byte) ([]Violation, string) {
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    &http.Request{Method: o.Method, URL: r.URL, Header: r.Header, Host: r.Host, Body: http.NoBody},
			PathParams: params,
			Route:      o.route,
		},
		Status:  status,
		Header:  header,
		Body:    http.NoBody,
		Options: responseOptions,
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return inOrder(responseViolations(err, status)), ""
	}
	responses := o.op.Responses
	if responses.Len() == 0 {
		return nil, ""
	}
	ref := responses.Status(status)
	if ref == nil {
		ref = responses.Default()
	}
	if ref == nil || ref.Value == nil || len(ref.Value.Content) == 0 {
		return nil, ""
	}
	if len(body) == 0 && (status == http.StatusNoContent || status == http.StatusNotModified) {
		return nil, ""
	}
	mt, ctype, v := mediaTypeFor(ref.Value.Content, header)
	if v != nil {
		return []Violation{*v}, ""
	}
	if mt.Schema == nil || mt.Schema.Value == nil {
		return nil, ""
	}
	if !isJSON(ctype) {
		return nil, UncheckedMediaType
	}
	value, err := decodeJSON(body)
	if err != nil {
		je := err.(*jsonError)
		return []Violation{{In: InBody, At: je.at(), Message: je.msg}}, ""
	}
	err = mt.Schema.Value.VisitJSON(value, append([]openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse()}, schemaOptions...)...)
	return inOrder(collect(nil, err, InBody, "")), ""
}

// responseViolations are the status and header errors of kin-openapi's
// ValidateResponse, which says which header in its reason.
func responseViolations(err error, status int) []Violation {
	re, ok := err.(*openapi3filter.ResponseError)
	if !ok {
		return collect(nil, err, InHeader, "")
	}
	if re.Reason == "status is not supported" {
		return []Violation{{In: InStatus, At: strconv.Itoa(status), Message: "not a status the operation answers with"}}
	}
	at := ""
	if _, rest, ok := strings.Cut(re.Reason, `header "`); ok {
		at, _, _ = strings.Cut(rest, `"`)
	}
	if re.Err == nil {
		return []Violation{{In: InHeader, At: at, Message: strings.TrimPrefix(re.Reason, "response ")}}
	}
	return collect(nil, re.Err, InHeader, at)
}

// mediaTypeFor picks the media type of content that a body of the given header's
// Content-Type is held to, or says why it cannot be: Content-Type stated twice
// (frameworks differ on which one counts), a charset other than UTF-8, or a media
// type the operation does not take.
func mediaTypeFor(content openapi3.Content, h http.Header) (*openapi3.MediaType, string, *Violation) {
	types := h.Values("Content-Type")
	if len(types) > 1 {
		return nil, "", &Violation{In: InHeader, At: "Content-Type", Message: "stated more than once: send one"}
	}
	ctype := ""
	if len(types) == 1 {
		ctype = types[0]
	}
	mediaType, params, err := mime.ParseMediaType(ctype)
	if err == nil {
		if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "utf8" && cs != "us-ascii" {
			return nil, "", &Violation{In: InHeader, At: "Content-Type", Message: "a charset other than UTF-8 cannot be checked against the interface spec: send UTF-8"}
		}
	}
	mt := content.Get(ctype)
	if mt == nil || err != nil {
		want := slices.Sorted(maps.Keys(content))
		return nil, "", &Violation{In: InHeader, At: "Content-Type",
			Message: fmt.Sprintf("want %s, got %q", strings.Join(want, " or "), ctype)}
	}
	return mt, mediaType, nil
}

// isJSON reports whether a media type is JSON: application/json or a +json type.
func isJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// isUnsupported reports whether err is kin-openapi finding no decoder for a media
// type: the gateway cannot check that body, which is not the caller's fault.
func isUnsupported(err error) bool {
	if me, ok := err.(openapi3.MultiError); ok && len(me) == 1 {
		err = me[0]
	}
	re, ok := err.(*openapi3filter.RequestError)
	if !ok {
		return false
	}
	pe, ok := re.Err.(*openapi3filter.ParseError)
	return ok && pe.Kind == openapi3filter.KindUnsupportedFormat
}
