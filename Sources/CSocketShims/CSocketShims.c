// Everything is inline in include/CSocketShims.h; SwiftPM wants one source file per C target.
#include "CSocketShims.h"
