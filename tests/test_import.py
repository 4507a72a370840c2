import subprocess
import sys


def test_import_is_light():
    """`import mobilefer` loads neither torch nor onnxruntime nor a model."""
    code = (
        "import sys, mobilefer; "
        "heavy = [m for m in ('torch', 'onnxruntime', 'torchvision') if m in sys.modules]; "
        "print(','.join(heavy)); print(len(mobilefer.EMOTIONS))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, n = out.stdout.splitlines()
    assert heavy == ""
    assert n == "7"


def test_public_api():
    import mobilefer

    assert mobilefer.EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    for name in mobilefer.__all__:
        assert getattr(mobilefer, name) is not None
