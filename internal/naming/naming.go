// Package naming maps Tencent identifiers to Kubernetes object names and label values.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	maxNameLength = validation.DNS1123LabelMaxLength // 63
	// hashLength is how many hex characters of sha256 tell apart inputs that sanitise alike.
	hashLength = 10
	// fallbackHashLength is used when a room's primary name is taken by another RoomId.
	fallbackHashLength = 16
)

// RoomObjectNames returns the LiveRoom names for a RoomId, best first. The first is the
// RoomId itself when it is a valid DNS-1123 label, otherwise a sanitised, lowercased
// prefix plus "-" and 10 hex characters of sha256(RoomId). The second is used only when
// another RoomId already holds the first (a RoomId can spell another's hashed name): the
// prefix plus 16 hex characters. The last resort is the first 63 hex characters of
// sha256(RoomId): no other RoomId can hold it, since a RoomId is at most 48 bytes and
// every other name this function makes is shorter than 63 characters or has a "-" 17
// characters from its end, so app users cannot pre-empt a room's every name by creating
// rooms named like them. A name whose spec.roomId differs is never overwritten.
func RoomObjectNames(roomID string) []string {
	fallback := hashed(dnsLabelPrefix(roomID), roomID, fallbackHashLength)
	lastResort := hashOf(roomID, maxNameLength)
	if len(validation.IsDNS1123Label(roomID)) == 0 {
		return []string{roomID, fallback, lastResort}
	}
	return []string{hashed(dnsLabelPrefix(roomID), roomID, hashLength), fallback, lastResort}
}

// RoomObjectName is the preferred LiveRoom name for a RoomId.
func RoomObjectName(roomID string) string { return RoomObjectNames(roomID)[0] }

// JobName is the recording Job's name for a room and a policy: readable, at most 63
// characters (so that the Job's pods can carry it as a label), and never the same for two
// different (room, policy) pairs because the pair's hash is always part of it.
func JobName(roomName, policyName string) string {
	return hashed(dnsLabelPrefix(roomName+"-"+policyName), roomName+"/"+policyName, hashLength)
}

// LabelValue returns v when it is a valid label value; otherwise v with invalid characters
// replaced, cut short, and suffixed with a hash of v so distinct values stay distinct.
func LabelValue(v string) string {
	if len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	var b strings.Builder
	for _, r := range v {
		switch {
		case r < 128 && (isAlnum(byte(r)) || r == '-' || r == '_' || r == '.'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	prefix := strings.TrimFunc(b.String(), func(r rune) bool { return !isAlnum(byte(r)) })
	if limit := validation.LabelValueMaxLength - hashLength - 1; len(prefix) > limit {
		prefix = strings.TrimRightFunc(prefix[:limit], func(r rune) bool { return !isAlnum(byte(r)) })
	}
	if prefix == "" {
		return hashOf(v, hashLength)
	}
	return prefix + "-" + hashOf(v, hashLength)
}

// dnsLabelPrefix lowercases s and keeps [a-z0-9-], folding other runs into one "-".
func dnsLabelPrefix(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range []byte(strings.ToLower(s)) {
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteByte(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

// hashed joins a prefix, cut to fit 63 characters, with n hex characters of sha256(input).
func hashed(prefix, input string, n int) string {
	if limit := maxNameLength - n - 1; len(prefix) > limit {
		prefix = strings.TrimRight(prefix[:limit], "-")
	}
	if prefix == "" {
		prefix = "room"
	}
	return prefix + "-" + hashOf(input, n)
}

func hashOf(s string, n int) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:n]
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
