package h2

import "golang.org/x/net/http2/hpack"

// blockCache remembers the last header block the encoder produced when that
// block is made only of indexed field representations. Such a block leaves
// the HPACK dynamic table as it found it, so as long as the encoder is not
// used again and its table size does not change, encoding the same field
// list again yields the same bytes. A proxy answering many requests on one
// connection with the same response fields (all but Date, which changes
// once a second) then skips the encoder's table searches.
type blockCache struct {
	ok    bool
	text  []byte    // the cached list's names and values, back to back
	spans []fieldAt // where each field's name and value end in text
	block []byte
	size  uint64 // the list's size as SETTINGS_MAX_HEADER_LIST_SIZE counts it
	// status is the list's :status when it passed validateResponse (0:
	// not checked as a response), so a server resending it skips the
	// check.
	status int
	hits   uint64 // lookups answered from the cache (tests read it)
}

type fieldAt struct{ nameEnd, end int }

// lookup returns the cached block when it encodes fields.
func (bc *blockCache) lookup(fields []hpack.HeaderField) ([]byte, bool) {
	if !bc.ok || len(fields) != len(bc.spans) {
		return nil, false
	}
	at := 0
	for i := range fields {
		f, sp := &fields[i], bc.spans[i]
		// string(bytes) == s compiles to a comparison without a copy.
		if f.Sensitive || string(bc.text[at:sp.nameEnd]) != f.Name || string(bc.text[sp.nameEnd:sp.end]) != f.Value {
			return nil, false
		}
		at = sp.end
	}
	bc.hits++
	return bc.block, true
}

// store records the block just encoded for fields, or forgets the cache
// when that block changed the table (the encoder has moved on either way).
func (bc *blockCache) store(fields []hpack.HeaderField, block []byte) {
	bc.ok = false
	bc.status = 0
	if !onlyIndexed(block) {
		return
	}
	n := 0
	for i := range fields {
		n += len(fields[i].Name) + len(fields[i].Value)
	}
	if n > maxCachedFieldBytes {
		return
	}
	bc.text, bc.spans = bc.text[:0], bc.spans[:0]
	for i := range fields {
		bc.text = append(bc.text, fields[i].Name...)
		nameEnd := len(bc.text)
		bc.text = append(bc.text, fields[i].Value...)
		bc.spans = append(bc.spans, fieldAt{nameEnd: nameEnd, end: len(bc.text)})
	}
	bc.block = append(bc.block[:0], block...)
	bc.size = uint64(n) + 32*uint64(len(fields))
	bc.ok = true
}

// validated records that the list just stored passed validateResponse.
func (bc *blockCache) validated(status int) {
	if bc.ok {
		bc.status = status
	}
}

// invalidate: the table changed outside writeBlock (its size was set).
func (bc *blockCache) invalidate() { bc.ok = false }

// maxCachedFieldBytes bounds what the cache copies: large header lists are
// rare and not worth holding.
const maxCachedFieldBytes = 4 << 10

// onlyIndexed reports whether an HPACK block is a sequence of indexed
// header field representations (RFC 7541 §6.1: first bit 1, a 7-bit prefix
// integer). Any other representation, or a dynamic table size update, may
// change the table.
func onlyIndexed(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); {
		c := b[i]
		i++
		if c&0x80 == 0 {
			return false
		}
		if c&0x7f == 0x7f { // the index continues (§5.1): bytes with the high bit set, then one without
			for {
				if i >= len(b) {
					return false
				}
				d := b[i]
				i++
				if d&0x80 == 0 {
					break
				}
			}
		}
	}
	return true
}
