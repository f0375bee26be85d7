package caches

import "sync"

// Bounds of what is kept for sharing. Past them, objects get copies of their own: sharing
// saves memory, it is never needed for correctness.
const (
	maxSharedMaps    = 4096
	maxInterned      = 16384
	maxInternedBytes = 256
)

// sharedMaps holds one-entry maps that many cached objects hold alike (a policy's label
// on its Jobs, an origin annotation), so that each costs one map, not one per object.
var sharedMaps = struct {
	sync.Mutex
	byEntry map[[2]string]map[string]string
}{byEntry: map[[2]string]map[string]string{}}

// sharedMap returns the map {key: value} that cached objects share. It must never be
// written to.
func sharedMap(key, value string) map[string]string {
	sharedMaps.Lock()
	defer sharedMaps.Unlock()
	entry := [2]string{key, value}
	if m, ok := sharedMaps.byEntry[entry]; ok {
		return m
	}
	m := map[string]string{key: value}
	if len(sharedMaps.byEntry) < maxSharedMaps {
		sharedMaps.byEntry[entry] = m
	}
	return m
}

var sharedBools = [2]bool{false, true}

// sharedBool returns a pointer to b that cached objects share. It must never be written
// through.
func sharedBool(b bool) *bool {
	if b {
		return &sharedBools[1]
	}
	return &sharedBools[0]
}

// interned holds strings that many cached objects carry alike: namespaces, label keys,
// enumerations, condition reasons and messages. Decoding gives every object its own copy
// of each string; interning makes them point to one.
var interned = struct {
	sync.Mutex
	strs map[string]string
}{strs: map[string]string{}}

// intern returns the shared copy of s.
func intern(s string) string {
	if s == "" || len(s) > maxInternedBytes {
		return s
	}
	interned.Lock()
	defer interned.Unlock()
	if shared, ok := interned.strs[s]; ok {
		return shared
	}
	if len(interned.strs) < maxInterned {
		interned.strs[s] = s
	}
	return s
}

// internAs is intern for string types (phases, reasons, condition types).
func internAs[T ~string](s T) T { return T(intern(string(s))) }
