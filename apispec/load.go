package apispec

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
)

// Spec is a set of loaded and checked OpenAPI documents: the operations requests
// are held to.
type Spec struct {
	// byMethod lists each method's operations, most specific template first (see
	// specificity), so the first match is the one the spec means.
	byMethod map[string][]*Operation
	ops      []*Operation // every operation, in document order
}

// Operation is one method on one path of a document.
type Operation struct {
	Method string // upper-case: GET, POST, …
	Path   string // the path template as the document has it, under its server's prefix
	File   string // the document that defines it

	tmpl  template
	route *routers.Route // what kin-openapi's validators take (see Load on 3.1)
	op    *openapi3.Operation

	onceQuery, onceHeader []onceParam // what may be stated once (see notRepeatable)
}

// Problem is one thing wrong with a document: the index of the document in the
// list Load was given, the file (a document's $ref may point into another), the
// line (0 when unknown) and what is wrong.
type Problem struct {
	Spec int
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
	}
	return p.File + ": " + p.Msg
}

// Problems is every problem Load found, in the order of the documents.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// maxProblems bounds the problems reported per document: a file that is not a
// spec at all would otherwise fill a screen with the same mistake.
const maxProblems = 20

// Load reads, checks and compiles the documents at paths (OpenAPI 3.0 or 3.1, YAML
// or JSON). A $ref may name another local file, relative to the document; a
// remote one (http://…) is refused, so starting the gateway never waits on the
// network. Every problem of every document is returned, as Problems.
func Load(paths []string) (*Spec, error) {
	s := &Spec{byMethod: make(map[string][]*Operation)}
	var problems Problems
	for i, path := range paths {
		ps := s.load(i, path)
		problems = append(problems, ps...)
	}
	problems = append(problems, s.duplicates(paths)...)
	if len(problems) > 0 {
		return nil, problems
	}
	for m, ops := range s.byMethod {
		slices.SortStableFunc(ops, func(a, b *Operation) int { return a.tmpl.specificity(b.tmpl) })
		s.byMethod[m] = ops
	}
	return s, nil
}

// load adds the operations of document i at path, or says what is wrong with it.
func (s *Spec) load(i int, path string) Problems {
	ctx := context.Background()
	loader := &openapi3.Loader{Context: ctx, IncludeOrigin: true, ReadFromURIFunc: localFiles}
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return Problems{fileProblem(i, path, err)}
	}
	version := doc.OpenAPIMajorMinor()
	if version == "" {
		msg := fmt.Sprintf("want an OpenAPI 3.0 or 3.1 document (openapi: 3.0.3 or 3.1.0), got openapi: %q", doc.OpenAPI)
		if doc.OpenAPI == "" {
			msg = "no openapi: version: want an OpenAPI 3.0 or 3.1 document (a Swagger 2.0 one converts with swagger2openapi or kin-openapi's openapi2conv)"
		}
		return Problems{{Spec: i, File: path, Line: 1, Msg: msg}}
	}
	// Examples are documentation: a wrong one is the spec author's to fix, and no
	// reason to refuse the config that holds callers to the rest.
	err = doc.Validate(ctx, openapi3.EnableMultiError(), openapi3.DisableExamplesValidation())
	var problems Problems
	var multi openapi3.MultiError
	switch {
	case errors.As(err, &multi):
		for _, e := range multi {
			problems = append(problems, fileProblem(i, path, e))
		}
	case err != nil:
		problems = append(problems, fileProblem(i, path, err))
	}
	if version != "3.0" {
		problems = append(problems, unenforced(i, path, doc)...)
	}
	if len(problems) > 0 {
		return problems[:min(len(problems), maxProblems)]
	}

	// kin-openapi's validators take a 3.1 document's schemas to its JSON Schema
	// 2020-12 mode, which compiles each schema again on every call. The built-in
	// validator knows what 3.1 adds that unenforced lets through, so the
	// validators are handed the document as 3.0 and use it.
	routeDoc := doc
	if version != "3.0" {
		as30 := *doc
		as30.OpenAPI = "3.0.3"
		routeDoc = &as30
	}
	bases := serverBases(doc)
	for _, p := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(p)
		ops := item.Operations()
		for _, method := range slices.Sorted(maps.Keys(ops)) {
			op := ops[method]
			onceQuery, onceHeader := notRepeatable(item, op)
			for _, base := range bases {
				full := base + p
				t, err := parseTemplate(full)
				if err != nil {
					problems = append(problems, Problem{Spec: i, File: path, Line: lineOf(item.Origin), Msg: fmt.Sprintf("paths.%s: %v", p, err)})
					continue
				}
				o := &Operation{
					Method: strings.ToUpper(method),
					Path:   full,
					File:   path,
					tmpl:   t,
					route:  &routers.Route{Spec: routeDoc, Path: p, PathItem: item, Method: strings.ToUpper(method), Operation: op},
					op:     op,

					onceQuery:  onceQuery,
					onceHeader: onceHeader,
				}
				s.ops = append(s.ops, o)
				s.byMethod[o.Method] = append(s.byMethod[o.Method], o)
			}
		}
	}
	return problems
}

// duplicates reports an operation two documents (or two servers of one) both
// define: which one a request is held to would depend on the order of a list.
func (s *Spec) duplicates(paths []string) Problems {
	var problems Problems
	seen := make(map[string]*Operation)
	for _, o := range s.ops {
		key := o.Method + " " + o.tmpl.shape()
		if first, dup := seen[key]; dup {
			if first.File != o.File || first.Path != o.Path {
				problems = append(problems, Problem{Spec: slices.Index(paths, o.File), File: o.File,
					Msg: fmt.Sprintf("%s %s is also defined as %s %s in %s: keep one", o.Method, o.Path, first.Method, first.Path, first.File)})
			}
			continue
		}
		seen[key] = o
	}
	return problems
}

// localFiles reads a $ref'd document from the local file system only.
func localFiles(loader *openapi3.Loader, location *url.URL) ([]byte, error) {
	if location.Scheme != "" && location.Scheme != "file" {
		return nil, fmt.Errorf("$ref %s is remote: keep the spec's parts in local files next to it", location.Redacted())
	}
	return openapi3.ReadFromFile(loader, location)
}

// serverBases are the path prefixes the document's servers put before its paths
// ("https://api.example.com/v1" → "/v1"), each once; "" when no server names one.
func serverBases(doc *openapi3.T) []string {
	var bases []string
	for _, srv := range doc.Servers {
		if srv == nil {
			continue
		}
		base := srv.URL
		if i := strings.Index(base, "://"); i >= 0 {
			base = base[i+3:]
			if j := strings.IndexByte(base, '/'); j >= 0 {
				base = base[j:]
			} else {
				base = ""
			}
		}
		if i := strings.IndexAny(base, "?#"); i >= 0 {
			base = base[:i]
		}
		base = strings.TrimRight(base, "/")
		if base != "" && base[0] != '/' {
			base = "/" + base // a relative server URL ("v1") is relative to the document's own
		}
		if !slices.Contains(bases, base) {
			bases = append(bases, base)
		}
	}
	if len(bases) == 0 {
		bases = []string{""}
	}
	return bases
}

// unenforced reports the schemas of a 3.1 document that use a JSON Schema 2020-12
// keyword the built-in validator does not enforce (see the package comment).
func unenforced(i int, path string, doc *openapi3.T) Problems {
	var problems Problems
	_ = doc.WalkSchemas(func(ptr string, ref *openapi3.SchemaRef) error {
		if kw := unenforcedKeyword(ref.Value); kw != "" {
			line := lineOf(ref.Value.Origin)
			if line == 0 {
				line = lineOf(ref.Origin)
			}
			problems = append(problems, Problem{Spec: i, File: path, Line: line, Msg: fmt.Sprintf(
				"%s: %s is a JSON Schema 2020-12 keyword signgate does not enforce; say it with OpenAPI 3.0's keywords "+
					"(enum for const, allOf/anyOf/oneOf for if/then/else, additionalProperties for patternProperties)", pointerLabel(ptr), kw)})
		}
		return nil
	})
	return problems
}

func pointerLabel(ptr string) string {
	if ptr == "" {
		return "#"
	}
	return "#" + ptr
}

func unenforcedKeyword(s *openapi3.Schema) string {
	switch {
	case s == nil:
		return ""
	case s.Const != nil:
		return "const"
	case len(s.PrefixItems) > 0:
		return "prefixItems"
	case s.Contains != nil || s.MinContains != nil || s.MaxContains != nil:
		return "contains"
	case len(s.PatternProperties) > 0:
		return "patternProperties"
	case len(s.DependentSchemas) > 0:
		return "dependentSchemas"
	case len(s.DependentRequired) > 0:
		return "dependentRequired"
	case s.PropertyNames != nil:
		return "propertyNames"
	case s.UnevaluatedItems.Has != nil || s.UnevaluatedItems.Schema != nil:
		return "unevaluatedItems"
	case s.UnevaluatedProperties.Has != nil || s.UnevaluatedProperties.Schema != nil:
		return "unevaluatedProperties"
	case s.If != nil || s.Then != nil || s.Else != nil:
		return "if/then/else"
	case len(s.Defs) > 0:
		return "$defs"
	case s.DynamicRef != "":
		return "$dynamicRef"
	case s.ContentSchema != nil:
		return "contentSchema"
	}
	return ""
}

// yamlLine finds the line in the YAML decoder's message: "yaml: line 3: did not
// find expected ',' or '}'", "construct errors: line 6: cannot construct …".
var yamlLine = regexp.MustCompile(`line (\d+): `)

// fileProblem turns an error of kin-openapi's loader or document validation into
// a Problem at the place it names: the Origin recorded for the element at fault
// (IncludeOrigin), or the line a YAML error gives in its text.
func fileProblem(i int, path string, err error) Problem {
	p := Problem{Spec: i, File: path, Msg: err.Error()}
	if loc := originOf(err); loc != nil {
		if loc.File != "" {
			p.File = loc.File
		}
		p.Line = loc.Line
		return p
	}
	if m := yamlLine.FindStringSubmatchIndex(p.Msg); m != nil {
		p.Line, _ = strconv.Atoi(p.Msg[m[2]:m[3]])
		p.Msg = strings.TrimSpace(p.Msg[m[1]:])
		if strings.Contains(err.Error(), "yaml: line") {
			p.Msg = "YAML syntax: " + p.Msg
		}
	}
	p.Msg = strings.TrimPrefix(p.Msg, "failed to unmarshal data: ")
	return p
}

var originType = reflect.TypeFor[*openapi3.Origin]()

// originOf is the location of the innermost element an error chain names: the
// validation errors of kin-openapi carry the Origin of what they are about in a
// field of that name, at whichever depth of the chain the element is known.
func originOf(err error) *openapi3.Location {
	var found *openapi3.Location
	var walk func(error, int)
	walk = func(e error, depth int) {
		if e == nil || depth > 64 {
			return
		}
		v := reflect.ValueOf(e)
		for v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() == reflect.Struct {
			if f := v.FieldByName("Origin"); f.IsValid() && f.Type() == originType && !f.IsNil() {
				if o := f.Interface().(*openapi3.Origin); o.Key != nil && o.Key.Line > 0 {
					found = o.Key
				}
			}
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap(), depth+1)
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x, depth+1)
			}
		}
	}
	walk(err, 0)
	return found
}

func lineOf(o *openapi3.Origin) int {
	if o == nil || o.Key == nil {
		return 0
	}
	return o.Key.Line
}
