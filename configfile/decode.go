package configfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// maxDepth bounds nesting: configurations are a few levels deep.
const maxDepth = 32

// Decode decodes data into v (a pointer to a struct) strictly, recording
// every problem in r. Fields that decode keep their values even when
// others fail, so later checks see as much of the file as there is.
func Decode(r *Report, data []byte, v any) {
	if !json.Valid(data) {
		var x any
		err := json.Unmarshal(data, &x)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineCol(data, se.Offset)
			r.Errorf("", nil, "not JSON: line %d column %d: %v", line, col, se)
		} else {
			r.Errorf("", nil, "not JSON: %v", err)
		}
		return
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		r.Errorf("", nil, "not JSON: %v", err)
		return
	}
	decodeValue(r, "", raw, reflect.ValueOf(v).Elem(), 0)
}

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	pos := max(off-1, 0) // Offset is just past the offending byte
	before := data[:pos]
	line := bytes.Count(before, []byte("\n")) + 1
	return line, int(pos) - bytes.LastIndexByte(before, '\n')
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decodeValue decodes raw into rv (settable), recursing into structs,
// pointers to structs and slices so that every nested problem has its
// own path.
func decodeValue(r *Report, path string, raw json.RawMessage, rv reflect.Value, depth int) {
	if depth > maxDepth {
		r.Errorf(path, nil, "nested deeper than %d", maxDepth)
		return
	}
	raw = bytes.TrimSpace(raw)
	if rv.CanAddr() && rv.Addr().Type().Implements(unmarshalerType) {
		if err := json.Unmarshal(raw, rv.Addr().Interface()); err != nil {
			r.Errorf(path, rawValue(raw), "%v", err)
		}
		return
	}
	switch rv.Kind() {
	case reflect.Pointer:
		if string(raw) == "null" {
			rv.SetZero()
			return
		}
		p := reflect.New(rv.Type().Elem())
		decodeValue(r, path, raw, p.Elem(), depth+1)
		rv.Set(p)
	case reflect.Struct:
		decodeStruct(r, path, raw, rv, depth)
	case reflect.Slice:
		if string(raw) == "null" {
			rv.SetZero()
			return
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			r.Errorf(path, rawValue(raw), "want a list (%s)", want(rv.Type().Elem()))
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(items), len(items))
		for i, it := range items {
			decodeValue(r, path+"["+strconv.Itoa(i)+"]", it, s.Index(i), depth+1)
		}
		rv.Set(s)
	default:
		if err := json.Unmarshal(raw, rv.Addr().Interface()); err != nil {
			r.Errorf(path, rawValue(raw), "want %s", want(rv.Type()))
		}
	}
}

// decodeStruct decodes a JSON object into a struct: each key once, each
// key one of the struct's, "//" ignored.
func decodeStruct(r *Report, path string, raw json.RawMessage, rv reflect.Value, depth int) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		r.Errorf(path, rawValue(raw), "want an object {...}")
		return
	}
	fields := fieldsOf(rv.Type())
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			r.Errorf(path, nil, "%v", err)
			return
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			r.Errorf(join(path, key), nil, "%v", err)
			return
		}
		kp := join(path, key)
		if seen[key] && key != CommentKey {
			r.Errorf(kp, nil, "given twice: JSON would keep only the last")
			continue
		}
		seen[key] = true
		if key == CommentKey {
			var s string
			var ss []string
			if json.Unmarshal(val, &s) != nil && json.Unmarshal(val, &ss) != nil {
				r.Errorf(kp, rawValue(val), "a comment: want a string or a list of strings")
			}
			continue
		}
		idx, ok := fields[key]
		if !ok {
			r.Errorf(kp, nil, "unknown key%s", suggest(key, fields))
			continue
		}
		decodeValue(r, kp, val, rv.FieldByIndex(idx), depth+1)
	}
}

// fieldsOf maps each JSON key of t to its field, with anonymous structs'
// fields promoted as encoding/json does.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := out[name]; !dup || len(idx) < len(out[name]) {
				out[name] = idx
			}
		}
	}
	walk(t, nil)
	return out
}

// suggest names the closest key when the unknown one looks like a typo.
func suggest(key string, fields map[string][]int) string {
	best, bestD := "", 2+len(key)/4 // a slip or two, not another word
	for _, k := range sortedKeys(fields) {
		if d := distance(key, k); d < bestD && d < len(key) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// distance is the edit distance of a and b counting a swap of two
// neighbours as one edit, the commonest typo (bounded inputs: keys).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j-1]+c, d[i-1][j]+1, d[i][j-1]+1)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// want names the JSON a Go type takes.
func want(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object {...}"
	case reflect.Slice:
		return "a list [...]"
	case reflect.Pointer:
		return want(t.Elem())
	}
	return t.String()
}

// rawValue is a bounded rendering of what the file had.
func rawValue(raw json.RawMessage) Raw {
	s := string(raw)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return Raw(s)
}
