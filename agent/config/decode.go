package config

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// decode sets the fields of v (a struct) from a parsed TOML table, key by
// key, so that a value of the wrong type or an unknown key is one problem
// among others instead of the end of the file: the operator sees every
// problem in one round. A field whose value is refused keeps its default.
func decode(v reflect.Value, table map[string]any, prefix string, bad badFunc) {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		f, ok := fieldByTag(v, k)
		if !ok {
			bad(key, "unknown key")
			continue
		}
		if msg := set(f, table[k], key, bad); msg != "" {
			bad(key, "%s", msg)
		}
	}
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// set stores val in f, or says why it cannot ("" when it could). Tables
// recurse through decode, which reports their own keys.
func set(f reflect.Value, val any, key string, bad badFunc) string {
	want := expected(f.Type())
	if reflect.PointerTo(f.Type()).Implements(textUnmarshaler) {
		s, ok := val.(string)
		if !ok {
			return fmt.Sprintf("want %s, got %s", want, tomlType(val))
		}
		if err := f.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return err.Error()
		}
		return ""
	}
	switch f.Kind() {
	case reflect.Struct:
		t, ok := val.(map[string]any)
		if !ok {
			return fmt.Sprintf("want %s, got %s", want, tomlType(val))
		}
		decode(f, t, key, bad)
		return ""
	case reflect.String:
		if s, ok := val.(string); ok {
			f.SetString(s)
			return ""
		}
	case reflect.Int:
		if n, ok := val.(int64); ok {
			if f.OverflowInt(n) {
				return fmt.Sprintf("%d is out of range", n)
			}
			f.SetInt(n)
			return ""
		}
	case reflect.Float64:
		switch n := val.(type) {
		case float64:
			f.SetFloat(n)
			return ""
		case int64:
			f.SetFloat(float64(n))
			return ""
		}
	case reflect.Bool:
		if b, ok := val.(bool); ok {
			f.SetBool(b)
			return ""
		}
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			break
		}
		a, ok := val.([]any)
		if !ok {
			break
		}
		out := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return fmt.Sprintf("want %s, got an array holding %s", want, tomlType(e))
			}
			out = append(out, s)
		}
		f.Set(reflect.ValueOf(out))
		return ""
	}
	return fmt.Sprintf("want %s, got %s", want, tomlType(val))
}

// expected names a field's type as the file must write it.
func expected(t reflect.Type) string {
	if t == reflect.TypeFor[Duration]() {
		return `a duration such as "15s"`
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a table"
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(expected(t.Elem()), "a "), "an ") + "s"
	}
	return t.String()
}

// tomlType names the type of a value as go-toml decodes it into any.
func tomlType(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", truncate(v))
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%g)", v)
	case bool:
		return fmt.Sprintf("a boolean (%t)", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time:
		return "a date-time"
	}
	return "a date or time"
}

func truncate(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
