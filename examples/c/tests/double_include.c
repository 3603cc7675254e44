/* The header twice in one translation unit, and in a second one (double_include_main.c). */
#include "splitsound.h"
#include "splitsound.h"

const char *double_include_version(void);
const char *double_include_version(void) { return splitsound_version(); }
