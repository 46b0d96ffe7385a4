# Eddy's Ruby launcher: the actionloop child that the eddy runtime server
# starts for the "ruby" launcher, following OpenWhisk's Ruby runtime
# (openwhisk-runtime-ruby core/ruby2.6ActionLoop/lib/launcher.rb).
#
# Usage: ruby launcher.rb <action dir> [<main method name>]
#
# It changes to <action dir>, puts the action's lib directory and the lib
# directories of gems vendored under vendor/bundle (bundle config set
# path vendor/bundle; bundle install) on the load path, loads main.rb,
# acknowledges on fd 3 ({"ok":true}, or {"ok":false,"error":...} with the
# backtrace on stderr), then loops: read one JSON line from stdin, export
# every key but "value" as __OW_<KEY>, call main(value) and write the
# result as one JSON line on fd 3. An exception raised by the action is
# printed ("exception: ...") and its message is the result's "error", as
# upstream does.

require "json"

out = IO.new(3, "w")
out.sync = true

answer = lambda do |obj|
  STDOUT.flush
  STDERR.flush
  begin
    text = JSON.generate(obj)
  rescue StandardError => e
    text = JSON.generate({ "error" => "The action returned a result that is not JSON: #{e}" })
  end
  out.write(text + "\n")
end

dir = ARGV[0]
main_name = (ARGV[1].nil? || ARGV[1].empty?) ? "main" : ARGV[1]

begin
  Dir.chdir(dir)
  $LOAD_PATH.unshift(File.join(dir, "lib")) if File.directory?(File.join(dir, "lib"))
  Dir.glob(File.join(dir, "vendor", "bundle", "ruby", "*", "gems", "*", "lib")).sort.each do |lib|
    $LOAD_PATH.unshift(lib)
  end
  $LOAD_PATH.unshift(dir)
  load File.join(dir, "main.rb")
  unless Object.private_method_defined?(main_name.to_sym) || Object.method_defined?(main_name.to_sym)
    raise NameError, "the action has no method named '#{main_name}'"
  end
rescue Exception => e
  STDERR.puts("#{e.class}: #{e.message}")
  STDERR.puts(e.backtrace.join("\n")) if e.backtrace
  answer.call({ "ok" => false, "error" => "#{e.class}: #{e.message}" })
  exit(1)
end
answer.call({ "ok" => true })

while (line = STDIN.gets)
  begin
    msg = JSON.parse(line)
    raise "the message is not a JSON object" unless msg.is_a?(Hash)
  rescue StandardError => e
    answer.call({ "error" => "The runtime sent an invalid message: #{e}" })
    next
  end
  payload = {}
  msg.each do |key, value|
    if key == "value"
      payload = value
    else
      ENV["__OW_#{key.upcase}"] = value.is_a?(String) ? value : JSON.generate(value)
    end
  end
  begin
    res = send(main_name, payload)
    res = { "error" => "The action did not return a dictionary." } unless res.is_a?(Hash) || res.is_a?(Array)
  rescue Exception => e
    puts "exception: #{e}"
    STDERR.puts(e.backtrace.join("\n")) if e.backtrace
    res = { "error" => "#{e}" }
  end
  answer.call(res)
end
