#include "symbol/ops_api.h"
