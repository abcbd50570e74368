"""Tooling around deploy/template.yaml (none of it ships to Lambda).

- `imports`: which first-party modules a handler really imports (a static scan).
- `package`: the Lambda package of a function, run by `sam build` through deploy/Makefile.
- `calls`: which AWS operations that code can call (a static scan against botocore's models).
- `permissions`: what each function's code calls on which template resource, and the IAM
  each role must grant because of it; checked against the template by the policy tests.
- `sam`: the SAM transform (samtranslator), as `sam deploy` would submit the template.
"""
