package siteinit

import (
	"bytes"
	"encoding/json"
	"strings"

	"ferry/configfile"
)

// object is a JSON object written in order, each key preceded by its
// explanation as a "//" key: the comment convention configfile accepts.
type object struct {
	entries []entry
}

type entry struct {
	comment []string
	key     string
	value   any // string, int, bool, []string or *object
}

func (o *object) set(key string, value any, comment ...string) *object {
	o.entries = append(o.entries, entry{comment: comment, key: key, value: value})
	return o
}

func (o *object) note(comment ...string) *object {
	o.entries = append(o.entries, entry{comment: comment})
	return o
}

// render is the object as indented JSON.
func (o *object) render() []byte {
	var b bytes.Buffer
	o.write(&b, "")
	b.WriteByte('\n')
	return b.Bytes()
}

func (o *object) write(b *bytes.Buffer, indent string) {
	in := indent + "  "
	b.WriteString("{")
	first := true
	sep := func() {
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString("\n" + in)
	}
	for _, e := range o.entries {
		if len(e.comment) > 0 {
			sep()
			b.WriteString(`"` + configfile.CommentKey + `": `)
			if len(e.comment) == 1 {
				b.Write(marshal(e.comment[0]))
			} else {
				b.WriteString("[")
				for i, c := range e.comment {
					if i > 0 {
						b.WriteString(",")
					}
					b.WriteString("\n" + in + "  ")
					b.Write(marshal(c))
				}
				b.WriteString("\n" + in + "]")
			}
		}
		if e.key == "" {
			continue
		}
		sep()
		b.Write(marshal(e.key))
		b.WriteString(": ")
		if sub, ok := e.value.(*object); ok {
			sub.write(b, in)
		} else {
			b.Write(marshal(e.value))
		}
	}
	b.WriteString("\n" + indent + "}")
}

func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // strings, numbers, lists of strings: cannot fail
	return bytes.TrimRight(b.Bytes(), "\n")
}

// shellQuote quotes s for a printed command line when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:,=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
