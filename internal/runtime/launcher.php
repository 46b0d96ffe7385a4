<?php
// Eddy's PHP launcher: the actionloop child that the eddy runtime server
// starts for the "php" launcher, following OpenWhisk's PHP runtime
// (openwhisk-runtime-php core/php8.2Action/runner.php).
//
// Usage: php launcher.php <action dir> [<main function name>]
//
// It changes to <action dir>, requires vendor/autoload.php when the action
// has one (a zip with its Composer dependencies) and index.php, acknowledges
// on fd 3 ({"ok":true}, or {"ok":false,"error":...} with the error on
// stderr), then loops: read one JSON line from stdin, export every key but
// "value" as __OW_<KEY> (putenv and $_ENV), call main($value), and write the
// result as one JSON line on fd 3. An exception or error thrown by the
// action goes to stderr and its result is OpenWhisk's
// {"error": "An error occurred running the action."}.

$fd3 = fopen('php://fd/3', 'wb');

function eddy_answer($fd3, $obj)
{
    fflush(STDOUT);
    fflush(STDERR);
    $json = json_encode($obj, JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE);
    if ($json === false) {
        $json = json_encode(['error' => 'The action returned a result that is not JSON: ' . json_last_error_msg()]);
    }
    fwrite($fd3, $json . "\n");
    fflush($fd3);
}

$__eddy_dir = $argv[1];
$__eddy_main = (isset($argv[2]) && $argv[2] !== '') ? $argv[2] : 'main';

try {
    chdir($__eddy_dir);
    if (file_exists('vendor/autoload.php')) {
        require 'vendor/autoload.php';
    }
    require 'index.php';
    if (!function_exists($__eddy_main)) {
        throw new Error("the action has no function named '" . $__eddy_main . "'");
    }
} catch (Throwable $e) {
    file_put_contents('php://stderr', (string)$e . "\n");
    eddy_answer($fd3, ['ok' => false, 'error' => get_class($e) . ': ' . $e->getMessage()]);
    exit(1);
}
eddy_answer($fd3, ['ok' => true]);

while (($line = fgets(STDIN)) !== false) {
    $data = json_decode($line, true);
    if (!is_array($data)) {
        eddy_answer($fd3, ['error' => 'The runtime sent an invalid message.']);
        continue;
    }
    foreach ($data as $key => $value) {
        if ($key !== 'value') {
            $name = '__OW_' . strtoupper($key);
            $text = is_string($value) ? $value : json_encode($value);
            $_ENV[$name] = $text;
            putenv($name . '=' . $text);
        }
    }
    $values = $data['value'] ?? [];
    try {
        $result = $__eddy_main($values);
        if (is_object($result)) {
            if (method_exists($result, 'getArrayCopy')) {
                $result = $result->getArrayCopy();
            } elseif ($result instanceof stdClass) {
                $result = (array)$result;
            }
        } elseif ($result === null) {
            $result = [];
        }
        if (!is_array($result)) {
            file_put_contents('php://stderr', 'Result must be an array but has type "' . gettype($result) . '"' . "\n");
            $result = ['error' => 'The action did not return a dictionary or array.'];
        } else {
            // an empty array is {} (OpenWhisk casts the result to an object)
            $result = (object)$result;
        }
    } catch (Throwable $e) {
        file_put_contents('php://stderr', (string)$e . "\n");
        $result = ['error' => 'An error occurred running the action.'];
    }
    eddy_answer($fd3, $result);
}
