package config

import (
	"encoding"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// A struct field tagged secret:"true" is read from the environment only (a value in the
// file is refused, so a secret never sits in a checked-in file) and redacted in logs.
// A field tagged redact:"url" is a URL whose password is redacted in logs.

var durationType = reflect.TypeFor[time.Duration]()

// yamlKeys lists the top-level yaml keys of the struct v points to (embedded structs
// flattened).
func yamlKeys(v any) map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := range t.NumField() {
		if name := yamlName(t.Field(i)); name != "" {
			keys[name] = true
		}
	}
	return keys
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// decodeStrict decodes a map of yaml nodes into out, refusing unknown keys.
func decodeStrict(m map[string]yaml.Node, out any) error {
	var node yaml.Node
	if err := node.Encode(m); err != nil {
		return err
	}
	return decodeNodeStrict(&node, out)
}

func decodeNodeStrict(node *yaml.Node, out any) error {
	b, err := yaml.Marshal(node)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil && err.Error() != "EOF" {
		return err
	}
	return nil
}

// rejectFileSecrets refuses secret fields written in the file.
func rejectFileSecrets(path string, v any, raw map[string]yaml.Node) error {
	rv := reflect.ValueOf(v).Elem()
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		node, present := raw[name]
		if name == "" || !present {
			continue
		}
		if f.Tag.Get("secret") == "true" {
			return fmt.Errorf("config: %s%s is a secret: set it in the environment (%s), not in the file",
				path, name, EnvPrefix+envName(strings.ReplaceAll(path, ".", "_")+name))
		}
		if f.Type.Kind() == reflect.Struct && f.Type != durationType {
			var sub map[string]yaml.Node
			if err := node.Decode(&sub); err == nil {
				if err := rejectFileSecrets(path+name+".", rv.Field(i).Addr().Interface(), sub); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func envName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
}

// applyEnv overrides the fields of the struct v points to from variables named
// prefix+UPPER(yaml key); nested structs extend the prefix; a map[string]string field
// takes every PREFIX_KEY_<NAME> variable; slices are comma-separated.
func applyEnv(prefix string, v any, lookup func(string) (string, bool), environ func() []string) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: %T is not a pointer to a struct", v)
	}
	rv = rv.Elem()
	t := rv.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		key := prefix + envName(name)
		fv := rv.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType && !isTextUnmarshaler(fv):
			if err := applyEnv(key+"_", fv.Addr().Interface(), lookup, environ); err != nil {
				return err
			}
		case f.Type.Kind() == reflect.Map && f.Type.Key().Kind() == reflect.String && f.Type.Elem().Kind() == reflect.String:
			for _, kv := range environ() {
				k, val, ok := strings.Cut(kv, "=")
				if !ok || !strings.HasPrefix(k, key+"_") {
					continue
				}
				if fv.IsNil() {
					fv.Set(reflect.MakeMap(f.Type))
				}
				fv.SetMapIndex(reflect.ValueOf(strings.ToLower(strings.TrimPrefix(k, key+"_"))), reflect.ValueOf(val))
			}
		default:
			val, ok := lookup(key)
			if !ok {
				continue
			}
			if err := setScalar(fv, val); err != nil {
				return fmt.Errorf("config: %s: %w", key, err)
			}
		}
	}
	return nil
}

func isTextUnmarshaler(v reflect.Value) bool {
	_, ok := v.Addr().Interface().(encoding.TextUnmarshaler)
	return ok
}

func setScalar(v reflect.Value, s string) error {
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(s))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(n)
	case reflect.Slice:
		var parts []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := setScalar(sl.Index(i), p); err != nil {
				return err
			}
		}
		v.Set(sl)
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

const redacted = "[redacted]"

// redact turns v into plain maps and values for logging, hiding secrets.
func redact(v any) any {
	return redactValue(reflect.ValueOf(v), "")
}

func redactValue(v reflect.Value, how string) any {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			fv := v.Field(i)
			switch {
			case f.Tag.Get("secret") == "true":
				if !fv.IsZero() {
					out[name] = redacted
				} else {
					out[name] = ""
				}
			case f.Anonymous && fv.Kind() == reflect.Struct:
				for k, x := range redactValue(fv, "").(map[string]any) {
					out[k] = x
				}
			default:
				out[name] = redactValue(fv, f.Tag.Get("redact"))
			}
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for _, k := range v.MapKeys() {
			out[fmt.Sprint(k.Interface())] = redactValue(v.MapIndex(k), how)
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = redactValue(v.Index(i), how)
		}
		return out
	case reflect.String:
		if how == "url" {
			return redactURL(v.String())
		}
		return v.String()
	default:
		return v.Interface()
	}
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
