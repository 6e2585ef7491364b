"""The Pulumi program: read the stack configuration once, build the stack, export its outputs.

`pulumi up` runs this with infra/ on sys.path (Pulumi.yaml: main: infra/). See infra/README.md.
"""

import pulumi

from components.stack import AcoustidStack
from stack_config import load_stack_args

stack = AcoustidStack("acoustid", load_stack_args(pulumi.Config()))
for name, value in stack.outputs.items():
    pulumi.export(name, value)
