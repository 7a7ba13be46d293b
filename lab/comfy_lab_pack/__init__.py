"""PROVISIONAL (judges branch): registers the judge and NFE nodes until the world branch's pack lands."""

from .judge_nodes import NODE_CLASS_MAPPINGS as _JUDGE
from .judge_nodes import NODE_DISPLAY_NAME_MAPPINGS as _JUDGE_NAMES
from .nfe_nodes import NODE_CLASS_MAPPINGS as _NFE
from .nfe_nodes import NODE_DISPLAY_NAME_MAPPINGS as _NFE_NAMES

NODE_CLASS_MAPPINGS = {**_JUDGE, **_NFE}
NODE_DISPLAY_NAME_MAPPINGS = {**_JUDGE_NAMES, **_NFE_NAMES}
