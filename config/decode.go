package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/signgate/signgate/secret"
)

// decoder walks a yaml.Node tree into Go values by their yaml tags. It keeps going
// after a problem, so one run reports every unknown key and wrong type in the file.
type decoder struct {
	lookupEnv func(string) (string, bool)
	// set holds the path of every key the file gave a value, with its line: setDefaults
	// fills only absent keys, and validate reports problems at these lines.
	set map[string]int
	// broken holds the paths already reported, so validate does not add a second,
	// confusing problem about the zero value left behind.
	broken   map[string]bool
	problems []Problem
	// nodes counts decoded values against maxNodes.
	nodes int
	// fromEnv maps each non-empty value read from the environment to its variable's
	// name, so problems can name the variable instead of showing the value: a
	// ${SECRET} put in the wrong field must not be printed by `signgate validate`.
	fromEnv map[string]string
	// inline lists the paths of secret fields whose value is written in the file
	// rather than read from the environment.
	inline []string
}

// maxNodes bounds the values one file may decode to. Aliases let a small file name a
// large list many times over (each Upstream aliasing one long targets list); no real
// config comes near this, and a hostile one must not cost minutes of CPU.
const maxNodes = 100_000

func newDecoder(lookupEnv func(string) (string, bool)) *decoder {
	d := &decoder{set: map[string]int{}, broken: map[string]bool{}, fromEnv: map[string]string{}}
	d.lookupEnv = func(name string) (string, bool) {
		v, ok := lookupEnv(name)
		if ok && v != "" {
			d.fromEnv[v] = name
		}
		return v, ok
	}
	return d
}

// hideEnvValues rewrites the messages of ps so that no value read from the
// environment shows: `got "s3cr3t"` becomes `got the value of ${NAME}`. Quoted
// forms are replaced always, bare ones when long enough not to be a coincidence
// (a port or a flag read from the environment is no secret, and "1" is everywhere).
func (d *decoder) hideEnvValues(ps []Problem) {
	for i := range ps {
		for v, name := range d.fromEnv {
			hidden := "the value of ${" + name + "}"
			ps[i].Msg = strings.ReplaceAll(ps[i].Msg, strconv.Quote(v), hidden)
			if len(v) >= 12 {
				ps[i].Msg = strings.ReplaceAll(ps[i].Msg, v, hidden)
			}
		}
	}
}

func (d *decoder) fail(path string, line int, format string, args ...any) {
	d.broken[path] = true
	d.problems = append(d.problems, Problem{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[secret.Secret]()
)

// decode sets v from n. A null n leaves v as it is: the key counts as absent.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolveAlias(n)
	if isNull(n) {
		return
	}
	if d.nodes++; d.nodes == maxNodes+1 {
		d.fail(path, n.Line, "too many values: more than %d, counting every use of an alias", maxNodes)
	}
	if d.nodes > maxNodes {
		return
	}
	if v.Type() == durationType {
		s, ok := d.scalar(n, path, `a duration such as "10s" or "2h"`)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, n.Line, `want a duration such as "10s" or "2h", got %q`, s)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Slice:
		d.decodeSlice(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path, "a string"); ok {
			v.SetString(s)
			if v.Type() == secretType && s != "" && !strings.Contains(n.Value, "${") {
				d.inline = append(d.inline, path)
			}
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path, "true or false")
		if !ok {
			return
		}
		switch s {
		case "true", "True", "TRUE":
			v.SetBool(true)
		case "false", "False", "FALSE":
			v.SetBool(false)
		default:
			d.fail(path, n.Line, "want true or false, got %q", s)
		}
	case reflect.Int, reflect.Int64:
		s, ok := d.scalar(n, path, "an integer")
		if !ok {
			return
		}
		// Base 10 only: YAML 1.1 would read 0755 as octal, which no size or count here
		// means.
		i, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			d.fail(path, n.Line, "want an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalar(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(path, n.Line, "want a number such as 0.1, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		// A Config field of a type this walker does not know is a bug in this package,
		// caught by every test that parses a file.
		panic(fmt.Sprintf("config: cannot decode into %s at %s", v.Type(), path))
	}
}

// scalar returns the value of scalar n with ${ENV} references expanded.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "want %s, got %s", want, describe(n))
		return "", false
	}
	s, errs := expand(n.Value, d.lookupEnv)
	for _, e := range errs {
		d.fail(path, n.Line, "%s", e)
	}
	return s, len(errs) == 0
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping, got %s", describe(n))
		return
	}
	fields := fieldsByName(v.Type())
	for _, kv := range d.pairs(n, path, 0) {
		name := kv.key.Value
		p := join(path, name)
		i, ok := fields[name]
		if !ok {
			d.fail(p, kv.key.Line, "unknown key %q", name)
			continue
		}
		if isNull(resolveAlias(kv.value)) {
			continue // absent: its default applies
		}
		d.set[p] = kv.key.Line
		d.decode(kv.value, v.Field(i), p)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "want a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	for _, kv := range d.pairs(n, path, 0) {
		p := join(path, kv.key.Value)
		// Unlike a struct field, a map entry with no value still exists: `ops:` under
		// roles is a role that allows nothing.
		d.set[p] = kv.key.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(kv.value, elem, p)
		m.SetMapIndex(reflect.ValueOf(kv.key.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n.Line, "want a list, got %s", describe(n))
		return
	}
	// MakeSlice, not nil, for "[]": an explicitly empty list overrides a default list.
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.set[p] = resolveAlias(e).Line
		d.decode(e, s.Index(i), p)
	}
	v.Set(s)
}

type keyValue struct{ key, value *yaml.Node }

// maxMergeDepth bounds nested "<<" merges; an anchor that merges itself would
// otherwise never end.
const maxMergeDepth = 8

// pairs returns the entries of mapping n, with "<<: *anchor" merges resolved the YAML
// way (keys written in the mapping win over merged ones, earlier merges over later
// ones) and duplicate or non-string keys reported.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) []keyValue {
	seen := map[string]int{}
	var out, merged []keyValue
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, d.merge(v, path, depth)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(path, k.Line, "want a string key, got %s", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.fail(join(path, k.Value), k.Line, "key %q is already set at line %d", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, keyValue{k, v})
	}
	for _, kv := range merged {
		if _, ok := seen[kv.key.Value]; !ok {
			seen[kv.key.Value] = kv.key.Line
			out = append(out, kv)
		}
	}
	return out
}

func (d *decoder) merge(v *yaml.Node, path string, depth int) []keyValue {
	v = resolveAlias(v)
	if depth >= maxMergeDepth {
		d.fail(path, v.Line, "<< merges nested too deep")
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path, depth+1)
	case yaml.SequenceNode:
		var out []keyValue
		for _, e := range v.Content {
			if e = resolveAlias(e); e.Kind != yaml.MappingNode {
				d.fail(path, e.Line, "<< merges a mapping or a list of mappings, got %s", describe(e))
				continue
			}
			out = append(out, d.pairs(e, path, depth+1)...)
		}
		return out
	}
	d.fail(path, v.Line, "<< merges a mapping or a list of mappings, got %s", describe(v))
	return nil
}

// fieldsByName maps yaml names to field indexes; fields tagged "-" are computed at
// load time and cannot be written in the file.
func fieldsByName(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// resolveAlias follows *alias references. yaml.v3 lets an anchor contain an alias to
// itself, so the walk is bounded; the decoder itself always ends because each step
// descends one level of the finite Config type.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for i := 0; i < 16 && n.Kind == yaml.AliasNode && n.Alias != nil; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return strconv.Quote(n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// join appends key to a dotted YAML path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent returns the path one level up: "routes[2].upstream" -> "routes[2]" ->
// "routes" -> "".
func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
