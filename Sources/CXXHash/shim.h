// XXH3 from Debian's libxxhash-dev (the row hash, see docs/row-hash.md).
#include <xxhash.h>
