#include <stdio.h>
#include <string.h>

#include "splitsound.h"
#include "splitsound.h"

const char *double_include_version(void);

int main(void) {
  int ok = strcmp(double_include_version(), splitsound_version()) == 0;
  printf("double include: %s\n", ok ? "ok" : "FAILED");
  return ok ? 0 : 1;
}
