package tencent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode"
	"unicode/utf8"
)

// checkStrictJSON refuses what encoding/json would accept silently but change: bytes that
// are not UTF-8 (it replaces them with U+FFFD) and objects that repeat a key, compared
// the way encoding/json matches keys to fields, regardless of case (it keeps the last,
// so a body could carry two values of RoomId and be read as either).
func checkStrictJSON(body []byte) error {
	if !utf8.Valid(body) {
		return errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var stack []*jsonObject // nil entries are arrays
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("body is not a JSON callback: %w", err)
		}
		if tok == json.Delim('}') || tok == json.Delim(']') {
			stack = stack[:len(stack)-1]
			continue
		}
		var top *jsonObject
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.wantKey {
			if err := top.add(tok.(string)); err != nil {
				return err
			}
			top.wantKey = false
			continue
		}
		// tok starts a value; in an object a key follows it.
		if top != nil {
			top.wantKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &jsonObject{wantKey: true})
		case json.Delim('['):
			stack = append(stack, nil)
		}
	}
}

// jsonObject tracks the keys of one object while its tokens are read.
type jsonObject struct {
	keys    []string // folded, until there are too many to search
	set     map[string]struct{}
	wantKey bool
}

// maxKeyScan is the number of keys searched linearly before a map pays off.
const maxKeyScan = 16

func (o *jsonObject) add(key string) error {
	folded := foldKey(key)
	if o.set == nil && len(o.keys) < maxKeyScan {
		for _, k := range o.keys {
			if k == folded {
				return duplicateKey(key)
			}
		}
		o.keys = append(o.keys, folded)
		return nil
	}
	if o.set == nil {
		o.set = make(map[string]struct{}, 2*maxKeyScan)
		for _, k := range o.keys {
			o.set[k] = struct{}{}
		}
	}
	if _, dup := o.set[folded]; dup {
		return duplicateKey(key)
	}
	o.set[folded] = struct{}{}
	return nil
}

func duplicateKey(key string) error {
	return fmt.Errorf("body repeats the key %.64q in one object (keys match regardless of case)", key)
}

// foldKey folds a key as encoding/json does when it matches keys to struct fields.
func foldKey(key string) string {
	var b []byte
	for _, r := range key {
		b = utf8.AppendRune(b, unicode.ToUpper(unicode.ToLower(r)))
	}
	return string(b)
}
